import { isNodeName, NODE_NAME_RULE } from '@membrane/types'
import { ClusterError, ClusterErrorCode } from './errors'

/** Resolve after `ms`. @internal */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * A node name becomes an etcd key segment: [A-Za-z0-9._-], starting with a letter or digit, so
 * two different names are always two different keys. @internal
 */
export function validateNodeName(node: unknown): string {
  if (!isNodeName(node)) {
    throw new ClusterError(
      ClusterErrorCode.INVALID_OPTION,
      `node name ${JSON.stringify(node)}: expected ${NODE_NAME_RULE}`,
      { input: node },
    )
  }
  return node
}

/** A key prefix: segments of [A-Za-z0-9._-] separated by '/'. @internal */
export function validateKeyPrefix(prefix: unknown, what: string): string {
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(prefix)) {
    throw new ClusterError(
      ClusterErrorCode.INVALID_OPTION,
      `${what} ${JSON.stringify(prefix)}: expected segments of [A-Za-z0-9._-] separated by '/', like membrane/cluster/v1`,
      { input: prefix },
    )
  }
  return prefix
}

/**
 * Run `fn` until it succeeds, throws a ClusterError, or the deadline passes (then a retryable
 * `BACKEND_UNAVAILABLE` naming what was tried). @internal
 */
export async function retryUntil<T>(
  what: string,
  deadline: number,
  isClosed: () => boolean,
  fn: () => Promise<T>,
): Promise<T> {
  let delay = 10
  let last: unknown
  const started = Date.now()
  for (;;) {
    if (isClosed()) throw new ClusterError(ClusterErrorCode.CLOSED, `${what}: closed`)
    try {
      return await fn()
    } catch (error) {
      if (error instanceof ClusterError) throw error
      last = error
    }
    if (Date.now() + delay > deadline) {
      throw new ClusterError(
        ClusterErrorCode.BACKEND_UNAVAILABLE,
        `${what}: etcd did not answer within ${Date.now() - started} ms: ${(last as Error)?.message ?? last}; retry later`,
        { cause: last },
      )
    }
    await sleep(delay)
    delay = Math.min(delay * 2, 250)
  }
}
