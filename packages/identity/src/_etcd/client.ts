import { createRequire } from 'node:module'
import { isNodeName, NODE_NAME_RULE } from '@membrane/types'
import { ExponentialBackoff, type IBackoff, noop } from 'cockatiel'
import type { Etcd3, IKeyValue, IOptions, ITxnResponse, Lease } from 'etcd3'
import { IdentityError, IdentityErrorCode } from '../errors'

/**
 * etcd3 is an optional peer dependency (16 MB of gRPC that users of the pure core never need):
 * loaded on first use, with an error that says how to install it.
 */
function loadEtcd3(): typeof import('etcd3') {
  try {
    return createRequire(import.meta.url)('etcd3') as typeof import('etcd3')
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw cause
    throw new IdentityError(
      IdentityErrorCode.DEPENDENCY_MISSING,
      '@membrane/identity/etcd needs the etcd3 package, an optional peer dependency: run `npm install etcd3`',
      { cause },
    )
  }
}

/** How to reach etcd: endpoints (`http://127.0.0.1:2379`) or a client you own. */
export interface EtcdConnectionOptions {
  /** Client URLs. Ignored when `client` is given. */
  endpoints?: string | readonly string[]
  /** An etcd3 client to use; it is not closed by `close()`. */
  client?: Etcd3
  /** Deadline of one etcd call in ms. Default 2000. */
  callTimeoutMs?: number
  /** Extra etcd3 client options (TLS credentials, auth...). */
  clientOptions?: Partial<IOptions>
}

/**
 * An etcd3 client without hidden retries or circuit breakers (this package bounds its own
 * waits, and a breaker would keep failing calls after etcd is back), with a deadline per call.
 * @internal
 */
export function connect(options: EtcdConnectionOptions): {
  client: Etcd3
  owned: boolean
  where: string
} {
  if (options.client)
    return { client: options.client, owned: false, where: 'the given etcd client' }
  const endpoints = options.endpoints
  if (
    endpoints === undefined ||
    (Array.isArray(endpoints) && endpoints.length === 0) ||
    endpoints === ''
  ) {
    throw new IdentityError(
      IdentityErrorCode.INVALID_OPTION,
      'etcd: give `endpoints` (e.g. http://127.0.0.1:2379) or `client`',
    )
  }
  const hosts = typeof endpoints === 'string' ? [endpoints] : [...endpoints]
  for (const h of hosts) {
    if (!/^https?:\/\/[^\s/]+$/.test(h)) {
      throw new IdentityError(
        IdentityErrorCode.INVALID_OPTION,
        `etcd endpoint ${JSON.stringify(h)}: expected a URL like http://127.0.0.1:2379`,
        { input: h },
      )
    }
  }
  const callTimeoutMs = options.callTimeoutMs ?? 2000
  const { Etcd3 } = loadEtcd3()
  const client = new Etcd3({
    hosts,
    dialTimeout: callTimeoutMs,
    faultHandling: {
      host: () => noop,
      global: noop,
      // etcd3 types this as an IBackoff but calls `.next()` on it first: it wants the factory.
      watchBackoff: new ExponentialBackoff({
        initialDelay: 50,
        maxDelay: 1000,
      }) as unknown as IBackoff<unknown>,
    },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    ...options.clientOptions,
  })
  return { client, owned: true, where: hosts.join(',') }
}

/**
 * An etcd3 client as this package's etcd backends use it (no hidden retries or breakers, a
 * deadline per call), for callers that share one connection between the allocator, the
 * ipcache sync and `@membrane/cluster`. The caller closes it.
 *
 * @throws IdentityError `INVALID_OPTION` for a bad endpoint, `DEPENDENCY_MISSING` without etcd3.
 * @example
 * const client = createEtcdClient({ endpoints: 'http://127.0.0.1:2379' })
 * const ids = await EtcdAllocator.create({ client, node: 'node-1' })
 */
export function createEtcdClient(options: Omit<EtcdConnectionOptions, 'client'>): Etcd3 {
  return connect(options).client
}

/** The first key-value of the i-th range response of a transaction. @internal */
function txnKv(r: ITxnResponse, i: number): IKeyValue | undefined {
  return r.responses[i]?.response_range?.kvs[0]
}

/** The value (utf8) of the i-th range response of a transaction. @internal */
export function txnValue(r: ITxnResponse, i: number): string | undefined {
  return txnKv(r, i)?.value.toString()
}

/** Resolve after `ms`. @internal */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A node name becomes part of etcd keys: keep it to [A-Za-z0-9._-]. @internal */
export function validateNodeName(node: unknown): string {
  if (!isNodeName(node)) {
    throw new IdentityError(
      IdentityErrorCode.INVALID_OPTION,
      `node name ${JSON.stringify(node)}: expected ${NODE_NAME_RULE}`,
      { input: node },
    )
  }
  return node
}

/** A key prefix: no leading or trailing '/', no empty segments. @internal */
export function validateKeyPrefix(prefix: unknown, what: string): string {
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(prefix)) {
    throw new IdentityError(
      IdentityErrorCode.INVALID_OPTION,
      `${what} ${JSON.stringify(prefix)}: expected segments of [A-Za-z0-9._-] separated by '/', like membrane/state/identities/v1`,
      { input: prefix },
    )
  }
  return prefix
}

/** Run `fn` until it succeeds, an IdentityError is thrown, or the deadline passes. @internal */
export async function retryUntil<T>(
  what: string,
  where: string,
  deadline: number,
  isClosed: () => boolean,
  fn: () => Promise<T>,
): Promise<T> {
  let delay = 10
  let last: unknown
  const started = Date.now()
  for (;;) {
    if (isClosed())
      throw new IdentityError(IdentityErrorCode.CLOSED, `${what}: the allocator is closed`)
    try {
      return await fn()
    } catch (error) {
      if (error instanceof IdentityError) throw error
      last = error
    }
    if (Date.now() + delay > deadline) {
      throw new IdentityError(
        IdentityErrorCode.BACKEND_UNAVAILABLE,
        `${what}: etcd (${where}) did not answer within ${Date.now() - started} ms: ${(last as Error)?.message ?? last}; retry later`,
        { cause: last, retryable: true },
      )
    }
    await sleep(delay)
    delay = Math.min(delay * 2, 200)
  }
}

/** A transient condition inside one attempt: retried until the deadline. @internal */
export class TransientError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TransientError'
  }
}

/**
 * A node's lease, granted on demand and kept alive by etcd3. When etcd says it is lost (expired
 * or revoked), `onLost` runs and the next `id()` grants a new one. Every grant attempt uses a
 * fresh etcd3 Lease, so a failed grant leaves nothing half-alive behind. @internal
 */
export class NodeLease {
  readonly #client: Etcd3
  readonly #ttl: number
  readonly #where: string
  readonly #isClosed: () => boolean
  readonly #onLost: (error: Error) => void
  #lease: Lease | undefined
  #id: Promise<string> | undefined

  constructor(
    client: Etcd3,
    ttl: number,
    where: string,
    isClosed: () => boolean,
    onLost: (error: Error) => void,
  ) {
    this.#client = client
    this.#ttl = ttl
    this.#where = where
    this.#isClosed = isClosed
    this.#onLost = onLost
  }

  /** The current lease id, granting a lease first when there is none. */
  id(deadline: number): Promise<string> {
    if (!this.#id) {
      const granted = retryUntil('grant lease', this.#where, deadline, this.#isClosed, async () => {
        const lease = this.#client.lease(this.#ttl)
        const id = await lease.grant()
        if (typeof id !== 'string') {
          lease.release()
          throw id
        }
        if (this.#isClosed()) {
          await lease.revoke().catch(() => lease.release())
          throw new IdentityError(IdentityErrorCode.CLOSED, 'grant lease: closed')
        }
        this.#lease = lease
        lease.on('lost', (error) => {
          if (this.#lease !== lease || this.#isClosed()) return
          this.#lease = undefined
          this.#id = undefined
          this.#onLost(error)
        })
        return id
      })
      this.#id = granted
      granted.catch(() => {
        if (this.#id === granted) this.#id = undefined
      })
    }
    return this.#id
  }

  /** Revoke the lease (its keys go at once), or just stop keeping it alive. */
  async close(revoke: boolean): Promise<void> {
    const lease = this.#lease
    this.#lease = undefined
    this.#id = undefined
    if (!lease) return
    if (revoke) await lease.revoke({ deadline: Date.now() + 1000 }).catch(() => lease.release())
    else lease.release()
  }
}
