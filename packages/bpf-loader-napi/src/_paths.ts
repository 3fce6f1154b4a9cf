import { isAbsolute } from 'node:path'
import { invalid } from './errors'

/** A pin path: absolute, no `..`, no NUL, no empty segments. */
export function checkPinPath(path: string, what = 'pin path'): void {
  if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0'))
    throw invalid(what, 'an absolute path on bpffs', path)
  const parts = path.split('/').slice(1)
  if (parts.some((p) => p === '..' || p === '.' || p === '') && path !== '/')
    throw invalid(what, 'a normalized path without . or .. segments', path)
}

/** An interface name as the kernel accepts it (IFNAMSIZ 16 incl. NUL, no '/', no spaces). */
export function checkIfname(name: string): void {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:@-]{1,15}$/.test(name))
    throw invalid('ifname', 'an interface name of 1-15 characters [A-Za-z0-9_.:@-]', name)
}
