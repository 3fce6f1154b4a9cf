import type { Etcd3, IKeyValue, Watcher } from 'etcd3'
import { retryUntil, validateKeyPrefix } from './_etcd'
import { ClusterError, ClusterErrorCode } from './errors'
import { DEFAULT_CLUSTER_PREFIX } from './node-registry'

/** One revision of a cluster-wide document set. */
export interface DocumentSet {
  /** The cluster revision: 1 for the first write, +1 for every change. 0: never written. */
  readonly revision: number
  /** key -> document (plain JSON). */
  readonly documents: ReadonlyMap<string, unknown>
}

/** A change to a document set: documents to put (by key) and keys to delete. */
export interface DocumentChange {
  put?: ReadonlyArray<{ key: string; document: unknown }>
  delete?: readonly string[]
}

/** Options of {@link ClusterDocuments.open}. */
export interface ClusterDocumentsOptions {
  /** An etcd3 client; not closed by `close()`. */
  client: Etcd3
  /** What the set holds, a key segment: `policies`, `services`. */
  kind: string
  /** Key prefix. Default `membrane/cluster/v1`. */
  prefix?: string
  /**
   * Receives every new revision (the first one at open, when the set was ever written), one
   * at a time; revisions that arrive while it runs are coalesced into the latest.
   */
  onChange: (set: DocumentSet) => void | Promise<void>
  /** How long an update or the open waits for etcd. Default 5000 ms. */
  timeoutMs?: number
  /** Background errors (a corrupt value, a failing onChange). */
  onError?: (error: Error) => void
}

/** The largest set value written (etcd refuses requests over 1.5 MiB by default). */
const MAX_SET_BYTES = 1024 * 1024

/**
 * A cluster-wide set of documents (the cluster's policies, its services) in etcd, changed all
 * or nothing: the whole set and its revision are one value under `<prefix>/<kind>/set`, replaced
 * by a compare-and-swap transaction, so every node sees every revision whole or not at all and
 * two writers never lose each other's change. Each node watches the key and hands each new
 * revision to `onChange`; while etcd is away the last revision stays in effect.
 *
 * @example
 * const policies = await ClusterDocuments.open({ client, kind: 'policies',
 *   onChange: (set) => console.log(set.revision, set.documents.size) })
 * await policies.update({ put: [{ key: 'default/allow-web', document: { kind: 'CiliumNetworkPolicy' } }] })
 */
export class ClusterDocuments {
  readonly key: string
  readonly #client: Etcd3
  readonly #timeoutMs: number
  readonly #onChange: ClusterDocumentsOptions['onChange']
  readonly #onError: (e: Error) => void
  #latest: DocumentSet = { revision: 0, documents: new Map() }
  #applied = 0
  #applying: Promise<void> | undefined
  readonly #waiters = new Set<{ revision: number; resolve: () => void }>()
  #watcher: Watcher | undefined
  #closed = false

  private constructor(options: ClusterDocumentsOptions) {
    const prefix = validateKeyPrefix(options.prefix ?? DEFAULT_CLUSTER_PREFIX, 'cluster key prefix')
    const kind = validateKeyPrefix(options.kind, 'document kind')
    this.key = `${prefix}/${kind}/set`
    this.#client = options.client
    this.#timeoutMs = options.timeoutMs ?? 5000
    this.#onChange = options.onChange
    this.#onError = options.onError ?? (() => {})
  }

  /**
   * Load the current set (handing it to `onChange` when it was ever written) and follow it.
   *
   * @throws ClusterError `BACKEND_UNAVAILABLE` (retryable) when etcd does not answer.
   */
  static async open(options: ClusterDocumentsOptions): Promise<ClusterDocuments> {
    const docs = new ClusterDocuments(options)
    try {
      const deadline = Date.now() + docs.#timeoutMs
      const res = await retryUntil('load the cluster documents', deadline, docs.#isClosed, () =>
        docs.#client.get(docs.key).exec(),
      )
      const kv = res.kvs[0]
      if (kv) docs.#receive(kv)
      const rev = (BigInt(res.header.revision) + 1n).toString()
      docs.#watcher = await retryUntil(
        'watch the cluster documents',
        deadline,
        docs.#isClosed,
        () => docs.#client.watch().key(docs.key).startRevision(rev).create(),
      )
      docs.#watcher.on('put', (k) => docs.#receive(k))
      docs.#watcher.on('error', (e) => docs.#onError(e))
      await docs.#applying
    } catch (error) {
      await docs.close()
      throw error
    }
    return docs
  }

  #isClosed = () => this.#closed

  /** The latest revision seen (applied or about to be). */
  get current(): DocumentSet {
    return this.#latest
  }

  /** The revision `onChange` last finished with. */
  get applied(): number {
    return this.#applied
  }

  #receive(kv: IKeyValue): void {
    let set: DocumentSet
    try {
      set = decodeSet(kv.value.toString())
    } catch (error) {
      this.#onError(
        new ClusterError(
          ClusterErrorCode.CORRUPT_STATE,
          `${this.key}: ${(error as Error).message}`,
          { cause: error },
        ),
      )
      return
    }
    if (set.revision <= this.#latest.revision) return
    this.#latest = set
    if (!this.#applying) this.#applying = this.#drain()
  }

  async #drain(): Promise<void> {
    try {
      while (this.#applied < this.#latest.revision && !this.#closed) {
        const set = this.#latest
        try {
          await this.#onChange(set)
        } catch (error) {
          this.#onError(error as Error)
        }
        this.#applied = set.revision
        for (const w of [...this.#waiters]) {
          if (w.revision <= this.#applied) {
            this.#waiters.delete(w)
            w.resolve()
          }
        }
      }
    } finally {
      this.#applying = undefined
    }
  }

  /**
   * Change the set in one transaction (compare-and-swap on the whole set, retried when another
   * node changed it in between) and return the new cluster revision. A change that changes
   * nothing writes nothing and returns the current revision.
   *
   * @throws ClusterError `INVALID_OPTION` (bad key, set too large), `BACKEND_UNAVAILABLE`
   *   (retryable) when etcd does not answer within `timeoutMs`: then nothing changed.
   */
  async update(change: DocumentChange): Promise<number> {
    if (this.#closed) throw new ClusterError(ClusterErrorCode.CLOSED, `${this.key}: closed`)
    for (const k of [...(change.put ?? []).map((p) => p.key), ...(change.delete ?? [])]) {
      if (
        typeof k !== 'string' ||
        k === '' ||
        k.length > 512 ||
        [...k].some((ch) => ch.charCodeAt(0) < 0x20)
      ) {
        throw new ClusterError(
          ClusterErrorCode.INVALID_OPTION,
          `document key ${JSON.stringify(k)}: expected 1..512 printable characters`,
          { input: k },
        )
      }
    }
    const c = this.#client
    return retryUntil(
      `update ${this.key}`,
      Date.now() + this.#timeoutMs,
      this.#isClosed,
      async () => {
        const res = await c.get(this.key).exec()
        const kv = res.kvs[0]
        const current = kv ? decodeSet(kv.value.toString()) : { revision: 0, documents: new Map() }
        const next = new Map(current.documents)
        for (const k of change.delete ?? []) next.delete(k)
        for (const p of change.put ?? []) next.set(p.key, p.document)
        if (sameDocuments(current.documents, next) && kv) return current.revision
        const revision = current.revision + 1
        const value = encodeSet({ revision, documents: next })
        if (Buffer.byteLength(value) > MAX_SET_BYTES) {
          throw new ClusterError(
            ClusterErrorCode.INVALID_OPTION,
            `${this.key}: the set would be ${Buffer.byteLength(value)} bytes, over the ${MAX_SET_BYTES}-byte limit of one etcd value`,
          )
        }
        const txn = await c
          .if(this.key, 'Mod', '==', kv ? kv.mod_revision : 0)
          .then(c.put(this.key).value(value))
          .commit()
        if (!txn.succeeded) throw new Error('another node changed the set; retrying')
        return revision
      },
    )
  }

  /** Resolve once `onChange` has finished with `revision` (or a later one). */
  waitApplied(revision: number, timeoutMs = this.#timeoutMs): Promise<void> {
    if (this.#applied >= revision) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const w = {
        revision,
        resolve: () => {
          clearTimeout(timer)
          resolve()
        },
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(w)
        reject(
          new ClusterError(
            ClusterErrorCode.BACKEND_UNAVAILABLE,
            `${this.key}: revision ${revision} was written but not seen back within ${timeoutMs} ms`,
          ),
        )
      }, timeoutMs)
      this.#waiters.add(w)
    })
  }

  /** Stop following the set. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const watcher = this.#watcher
    this.#watcher = undefined
    await watcher?.cancel().catch(() => {})
  }
}

function encodeSet(set: DocumentSet): string {
  return JSON.stringify({
    revision: set.revision,
    documents: [...set.documents].map(([key, document]) => ({ key, document })),
  })
}

function decodeSet(text: string): DocumentSet {
  const v = JSON.parse(text) as { revision?: unknown; documents?: unknown }
  if (
    typeof v !== 'object' ||
    v === null ||
    !Number.isInteger(v.revision) ||
    !Array.isArray(v.documents)
  ) {
    throw new Error('expected { revision, documents: [{ key, document }] }')
  }
  const documents = new Map<string, unknown>()
  for (const d of v.documents as { key?: unknown; document?: unknown }[]) {
    if (typeof d?.key !== 'string') throw new Error('a document without a key')
    documents.set(d.key, d.document)
  }
  return { revision: v.revision as number, documents }
}

function sameDocuments(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): boolean {
  if (a.size !== b.size) return false
  for (const [k, v] of a)
    if (!b.has(k) || JSON.stringify(b.get(k)) !== JSON.stringify(v)) return false
  return true
}
