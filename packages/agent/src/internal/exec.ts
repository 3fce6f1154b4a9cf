import { execFile } from 'node:child_process'

/** A command that failed; the command line is shown as an argument array, never a shell string. */
class CommandError extends Error {
  readonly file: string
  readonly args: readonly string[]
  readonly exitCode: number | null
  readonly stderr: string

  constructor(file: string, args: readonly string[], exitCode: number | null, stderr: string) {
    const printable = [file, ...args]
      .map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a))
      .join(' ')
    super(
      `command failed (exit ${exitCode ?? 'signal'}): ${printable}${stderr.trim() ? `: ${stderr.trim()}` : ''}`,
    )
    this.name = 'CommandError'
    this.file = file
    this.args = args
    this.exitCode = exitCode
    this.stderr = stderr
  }
}

/** Run a program with an argument array (no shell); resolve with stdout, reject with stderr. */
export function run(file: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const code = typeof error.code === 'number' ? error.code : null
          reject(new CommandError(file, args, code, String(stderr)))
          return
        }
        resolve(String(stdout))
      },
    )
    if (input !== undefined) child.stdin?.end(input)
  })
}
