/**
 * Names the DNS proxy learned: name -> IPs, each with its own expiry (the answer's TTL, at least
 * the minimum TTL, as Cilium's `--tofqdns-min-ttl`).
 */

/** IPs of a name that expired together. */
export interface FqdnExpiry {
  name: string
  ips: string[]
}

/** Options of {@link FqdnCache}. */
export interface FqdnCacheOptions {
  /** Lower bound of every TTL, seconds. Default 3600 (Cilium's default). */
  minTtlSeconds?: number
  /** Clock in ms (tests). Default Date.now. */
  now?: () => number
}

/**
 * name -> (IP -> expiry). Learning again extends an IP's expiry, never shortens it.
 *
 * @example
 * const cache = new FqdnCache({ minTtlSeconds: 60 })
 * cache.learn('api.example.test', ['10.0.0.5'], 30) // kept 60 s
 */
export class FqdnCache {
  readonly minTtlSeconds: number
  readonly #now: () => number
  readonly #byName = new Map<string, Map<string, number>>()

  constructor(options: FqdnCacheOptions = {}) {
    this.minTtlSeconds = options.minTtlSeconds ?? 3600
    this.#now = options.now ?? Date.now
  }

  /** The TTL the cache applies to an answer's TTL. */
  effectiveTtl(ttlSeconds: number): number {
    return Math.max(this.minTtlSeconds, Math.max(0, Math.floor(ttlSeconds)))
  }

  /** Record `ips` for `name`; returns the IPs that were new and the expiry (ms). */
  learn(
    name: string,
    ips: readonly string[],
    ttlSeconds: number,
  ): { added: string[]; expiresAt: number } {
    const expiresAt = this.#now() + this.effectiveTtl(ttlSeconds) * 1000
    let m = this.#byName.get(name)
    if (!m) {
      m = new Map()
      this.#byName.set(name, m)
    }
    const added: string[] = []
    for (const ip of ips) {
      const old = m.get(ip)
      if (old === undefined) added.push(ip)
      if (old === undefined || old < expiresAt) m.set(ip, expiresAt)
    }
    return { added, expiresAt }
  }

  /** Unexpired IPs of `name`. */
  lookup(name: string): string[] {
    const now = this.#now()
    return [...(this.#byName.get(name) ?? [])].filter(([, t]) => t > now).map(([ip]) => ip)
  }

  /** Names that resolved to `ip` (unexpired). */
  namesOf(ip: string): string[] {
    const now = this.#now()
    const out: string[] = []
    for (const [name, m] of this.#byName) {
      const t = m.get(ip)
      if (t !== undefined && t > now) out.push(name)
    }
    return out
  }

  /** Every name with its unexpired IPs. */
  entries(): Array<{ name: string; ips: Array<{ ip: string; expiresAt: number }> }> {
    return [...this.#byName].map(([name, m]) => ({
      name,
      ips: [...m].map(([ip, expiresAt]) => ({ ip, expiresAt })),
    }))
  }

  /** Remove what expired by `now`; returns it, grouped by name. */
  expire(now = this.#now()): FqdnExpiry[] {
    const out: FqdnExpiry[] = []
    for (const [name, m] of this.#byName) {
      const ips: string[] = []
      for (const [ip, t] of m) {
        if (t <= now) {
          m.delete(ip)
          ips.push(ip)
        }
      }
      if (m.size === 0) this.#byName.delete(name)
      if (ips.length) out.push({ name, ips })
    }
    return out
  }

  get size(): number {
    return this.#byName.size
  }
}
