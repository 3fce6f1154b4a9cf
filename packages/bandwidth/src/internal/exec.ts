import { execFile } from 'node:child_process'
import { BandwidthError } from '../errors'

/** Result of a finished command. */
export interface ExecResult {
  ok: boolean
  stdout: string
  stderr: string
}

/** Run a program with an argument array (never a shell), resolving also on failure. */
export function tryExec(file: string, args: readonly string[]): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({
        ok: !error,
        stdout,
        stderr: stderr || (error ? String((error as Error).message) : ''),
      })
    })
  })
}

/** Run a program and throw a `COMMAND_FAILED` BandwidthError naming the command on failure. */
export async function exec(file: string, args: readonly string[]): Promise<string> {
  const r = await tryExec(file, args)
  if (!r.ok) {
    throw new BandwidthError(
      'COMMAND_FAILED',
      `${file} ${args.join(' ')} failed: ${r.stderr.trim() || 'no output'}`,
      { field: file, value: args },
    )
  }
  return r.stdout
}
