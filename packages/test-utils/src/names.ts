/**
 * Names of kernel objects made by tests. Every name starts with {@link TEST_PREFIX} and embeds
 * the creating process's pid, so a sweep can tell a crashed test's leftovers (owner gone) from
 * the objects of a test that is still running in another process.
 *
 * Layout: `mbt` + pid (base 36) + `x` + counter (base 36), at most 13 characters, so a one-letter
 * suffix still fits the kernel's 15-character interface names.
 */
export const TEST_PREFIX = 'mbt'

let counter = 0

/** A new unique name for a namespace, an interface (add a one-letter suffix) or a pin dir. */
export function uniqueName(): string {
  counter += 1
  return `${TEST_PREFIX}${process.pid.toString(36)}x${counter.toString(36)}`
}

/** The pid that created a test object named by {@link uniqueName}, or undefined if not ours. */
export function ownerPid(name: string): number | undefined {
  const m = /^mbt([0-9a-z]+)x[0-9a-z]+/.exec(name)
  if (!m?.[1]) return undefined
  const pid = Number.parseInt(m[1], 36)
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
