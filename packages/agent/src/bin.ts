// The `membrane` executable: runs the CLI and exits with its code.
import { runCli } from './cli'

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`membrane: ${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  },
)
