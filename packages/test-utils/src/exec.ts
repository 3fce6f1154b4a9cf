import { type ExecFileOptions, execFile, execFileSync } from 'node:child_process'
import { accessSync, constants, statSync } from 'node:fs'
import { join } from 'node:path'

/** What a command printed, and how it ended. */
export interface RunResult {
  stdout: string
  stderr: string
}

/** A command that failed: names the command line (argument array, never a shell string). */
export class CommandError extends Error {
  readonly file: string
  readonly args: readonly string[]
  readonly exitCode: number | null
  readonly stderr: string
  readonly stdout: string

  constructor(
    file: string,
    args: readonly string[],
    exitCode: number | null,
    stdout: string,
    stderr: string,
    cause?: unknown,
  ) {
    const printable = [file, ...args]
      .map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a))
      .join(' ')
    super(
      `command failed (exit ${exitCode ?? 'signal'}): ${printable}${stderr.trim() ? `\n${stderr.trim()}` : ''}`,
      { cause },
    )
    this.name = 'CommandError'
    this.file = file
    this.args = args
    this.exitCode = exitCode
    this.stdout = stdout
    this.stderr = stderr
  }
}

/**
 * Run a program with an argument array (no shell) and resolve with its output; reject with a
 * {@link CommandError} carrying stderr when it exits non-zero.
 */
export function run(
  file: string,
  args: readonly string[],
  options: ExecFileOptions = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { maxBuffer: 64 * 1024 * 1024, ...options, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const out = String(stdout)
        const err = String(stderr)
        if (error) {
          const code = typeof error.code === 'number' ? error.code : null
          reject(new CommandError(file, args, code, out, err, error))
          return
        }
        resolve({ stdout: out, stderr: err })
      },
    )
  })
}

/** Synchronous {@link run}: for feature probes and exit-time cleanup only. */
export function runSync(
  file: string,
  args: readonly string[],
  options: { timeout?: number } = {},
): RunResult {
  try {
    const stdout = execFileSync(file, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeout ?? 10_000,
    })
    return { stdout, stderr: '' }
  } catch (error) {
    const e = error as { status?: number | null; stdout?: string; stderr?: string }
    throw new CommandError(
      file,
      args,
      e.status ?? null,
      String(e.stdout ?? ''),
      String(e.stderr ?? ''),
      error,
    )
  }
}

/** True when `file` can be run (found on PATH and executable). */
export function hasCommand(file: string): boolean {
  return findCommand(file) !== undefined
}

/** The absolute path of `file` on PATH (plus the sbin directories root tools live in), if any. */
export function findCommand(file: string): string | undefined {
  if (file.includes('/')) return isExecutable(file) ? file : undefined
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/local/sbin'])
  for (const dir of dirs) {
    if (!dir) continue
    const candidate = join(dir, file)
    if (isExecutable(candidate)) return candidate
  }
  return undefined
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}
