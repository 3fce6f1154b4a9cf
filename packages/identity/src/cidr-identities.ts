import { toPrefix } from './_prefix'
import type { IdentityAllocator } from './allocator'
import type { IPCache } from './ipcache'

/**
 * Keeps CIDR identities and the ipcache in step with the set of prefixes policies select
 * (`toCIDR`, `toCIDRSet`, FQDN answers): `update(prefixes)` allocates the node-local identity of
 * each new prefix and adds an ipcache entry for it with source `generated` (so an endpoint's own
 * `local` entry for the same address still wins); prefixes no longer wanted are released and
 * their entries removed. One reference per prefix is held by this object.
 *
 * @example
 * const cidrs = new CIDRIdentities(allocator, ipcache)
 * await cidrs.update(['0.0.0.0/0', '10.0.0.0/8']) // Map { '0.0.0.0/0' => 16777217, '10.0.0.0/8' => 16777218 }
 */
export class CIDRIdentities {
  readonly #allocator: IdentityAllocator
  readonly #ipcache: IPCache
  readonly #held = new Map<string, number>()
  #queue: Promise<unknown> = Promise.resolve()

  constructor(allocator: IdentityAllocator, ipcache: IPCache) {
    this.#allocator = allocator
    this.#ipcache = ipcache
  }

  /** The prefixes held now and their identities. */
  get current(): ReadonlyMap<string, number> {
    return this.#held
  }

  /**
   * Make the held set exactly `prefixes` (canonicalized: `10.1.0.0/8` is `10.0.0.0/8`).
   * Validates every prefix before changing anything. Calls run one after another.
   *
   * @throws IdentityError `INVALID_PREFIX` naming the bad prefix (nothing applied).
   */
  update(prefixes: Iterable<string>): Promise<ReadonlyMap<string, number>> {
    let wanted: Set<string>
    try {
      wanted = new Set([...prefixes].map((p) => toPrefix(p).cidr))
    } catch (error) {
      return Promise.reject(error)
    }
    const run = this.#queue.then(() => this.#apply(wanted))
    this.#queue = run.catch(() => {})
    return run
  }

  async #apply(wanted: Set<string>): Promise<ReadonlyMap<string, number>> {
    for (const cidr of wanted) {
      if (this.#held.has(cidr)) continue
      const { id } = await this.#allocator.allocateCIDR(cidr)
      this.#held.set(cidr, id)
      this.#ipcache.upsert(cidr, { identity: id, source: 'generated' })
    }
    for (const [cidr, id] of [...this.#held]) {
      if (wanted.has(cidr)) continue
      this.#held.delete(cidr)
      this.#ipcache.delete(cidr, 'generated')
      await this.#allocator.release(id)
    }
    return this.#held
  }

  /** Release everything held. */
  clear(): Promise<ReadonlyMap<string, number>> {
    return this.update([])
  }
}
