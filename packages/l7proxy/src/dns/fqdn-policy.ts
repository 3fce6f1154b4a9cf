/**
 * toFQDNs glue between the DNS proxy and the rest of the node: turn learned names and IPs into
 * CIDR identities, ipcache entries and FQDN selections, and push the resulting policy map
 * changes — all before the DNS answer is released to the client (use `onLearn` as the DNS
 * proxy's hook). When learned IPs expire, the reverse.
 */
import type { IdentityData, SelectionChange } from '@membrane/policy'
import type { FqdnExpiry } from './cache'
import type { DnsLearnEvent } from './proxy'

/** The parts of a @membrane/policy PolicyRepository the updater uses. */
export interface FqdnPolicyTarget {
  /** Select the IPs for matching toFQDNs selectors; says which IPs need a CIDR identity. */
  learnFqdn(
    name: string,
    ips: readonly string[],
  ): { change: SelectionChange; needIdentities: Array<{ ip: string; labels: string[] }> }
  updateIdentities(
    added: Iterable<IdentityData>,
    removed?: Iterable<number | IdentityData>,
  ): SelectionChange
  readonly selectorCache: { forgetFqdn(name: string, ips?: readonly string[]): SelectionChange }
}

/** Options of {@link FqdnPolicyUpdater}. */
export interface FqdnPolicyUpdaterOptions {
  /** Usually the node's PolicyRepository. */
  policy: FqdnPolicyTarget
  /**
   * The CIDR identity of `ip`/32 with `labels` (from the policy: `cidr:<ip>/32`,
   * `reserved:world`); allocate or find it, e.g. with @membrane/identity's allocator. A number
   * (the identity then carries `labels`), or the identity data.
   */
  allocateCidrIdentity(
    ip: string,
    labels: string[],
  ): number | IdentityData | Promise<number | IdentityData>
  /** Give a CIDR identity back when none of its names is cached any more. */
  releaseCidrIdentity?(ip: string, identity: number): void | Promise<void>
  /** Write `<ip>/32 -> identity` to the datapath's ipcache. */
  ipcacheUpsert(prefix: string, identity: number): void | Promise<void>
  /** Remove `<ip>/32` from the ipcache. */
  ipcacheDelete?(prefix: string): void | Promise<void>
  /**
   * Push the policy changes to the datapath (for each endpoint: apply its map-state diff).
   * Called after every learn/expire that changed a selection.
   */
  applyPolicy(change: SelectionChange): void | Promise<void>
}

function hostPrefix(ip: string): string {
  return ip.includes(':') ? `${ip}/128` : `${ip}/32`
}

/**
 * Keeps FQDN selections, CIDR identities and the ipcache in step with the DNS proxy.
 *
 * @example
 * const fqdn = new FqdnPolicyUpdater({
 *   policy: repo,
 *   allocateCidrIdentity: (ip) => identities.allocateCidr(`${ip}/32`),
 *   ipcacheUpsert: (prefix, id) => dp.ipcache.upsert(prefix, id),
 *   applyPolicy: () => { for (const [id, t] of tracked) dp.policyMap(id).apply(t.refresh()) },
 * })
 * const proxy = new L7Proxy({ ..., dns: { onLearn: fqdn.onLearn, onExpire: fqdn.onExpire } })
 */
export class FqdnPolicyUpdater {
  readonly #o: FqdnPolicyUpdaterOptions
  /** ip -> its CIDR identity and the names that resolved to it. */
  readonly #ips = new Map<string, { identity: number; names: Set<string> }>()
  /** Learn/expire run one at a time, in order. */
  #chain: Promise<unknown> = Promise.resolve()

  constructor(options: FqdnPolicyUpdaterOptions) {
    this.#o = options
  }

  /** The DNS proxy's `onLearn` hook (bound). Resolves once the datapath is updated. */
  readonly onLearn = (event: DnsLearnEvent): Promise<void> => {
    const run = this.#chain.then(() => this.#learn(event))
    this.#chain = run.catch(() => {})
    return run
  }

  /** The DNS proxy's `onExpire` hook (bound). */
  readonly onExpire = (expired: FqdnExpiry[]): Promise<void> => {
    const run = this.#chain.then(() => this.#expire(expired))
    this.#chain = run.catch(() => {})
    return run
  }

  /** The CIDR identity given to `ip`, if it is learned. */
  identityOf(ip: string): number | undefined {
    return this.#ips.get(ip)?.identity
  }

  /** Names `ip` is learned for. */
  namesOf(ip: string): string[] {
    return [...(this.#ips.get(ip)?.names ?? [])]
  }

  async #learn(e: DnsLearnEvent): Promise<void> {
    const names = [e.name, ...e.cnames]
    const changes: SelectionChange[] = []
    const need = new Map<string, string[]>()
    for (const n of names) {
      const r = this.#o.policy.learnFqdn(n, e.ips)
      changes.push(r.change)
      for (const x of r.needIdentities) need.set(x.ip, x.labels)
    }
    const added: IdentityData[] = []
    for (const [ip, labels] of need) {
      if (this.#ips.has(ip)) continue
      const got = await this.#o.allocateCidrIdentity(ip, labels)
      const data: IdentityData = typeof got === 'number' ? { id: got, labels, ips: [ip] } : got
      this.#ips.set(ip, { identity: data.id, names: new Set() })
      added.push(data)
      await this.#o.ipcacheUpsert(hostPrefix(ip), data.id)
    }
    for (const ip of e.ips) {
      const entry = this.#ips.get(ip)
      if (entry) for (const n of names) entry.names.add(n)
    }
    if (added.length) changes.push(this.#o.policy.updateIdentities(added))
    await this.#o.applyPolicy(merge(...changes))
  }

  async #expire(expired: FqdnExpiry[]): Promise<void> {
    const changes: SelectionChange[] = []
    const removed: Array<{ ip: string; identity: number }> = []
    for (const { name, ips } of expired) {
      changes.push(this.#o.policy.selectorCache.forgetFqdn(name, ips))
      for (const ip of ips) {
        const entry = this.#ips.get(ip)
        if (!entry) continue
        entry.names.delete(name)
        if (entry.names.size === 0) {
          this.#ips.delete(ip)
          removed.push({ ip, identity: entry.identity })
        }
      }
    }
    if (removed.length)
      changes.push(
        this.#o.policy.updateIdentities(
          [],
          removed.map((r) => r.identity),
        ),
      )
    // Policy first (no entry allows the IP any more), then the ipcache and the identities.
    await this.#o.applyPolicy(merge(...changes))
    for (const r of removed) {
      await this.#o.ipcacheDelete?.(hostPrefix(r.ip))
      await this.#o.releaseCidrIdentity?.(r.ip, r.identity)
    }
  }
}

function merge(...changes: Array<SelectionChange | undefined>): SelectionChange {
  const identities = new Set<number>()
  const selectors = new Map<string, { added: number[]; removed: number[] }>()
  for (const c of changes) {
    if (!c) continue
    for (const id of c.identities) identities.add(id)
    for (const [k, v] of c.selectors) {
      const prev = selectors.get(k)
      selectors.set(
        k,
        prev ? { added: [...prev.added, ...v.added], removed: [...prev.removed, ...v.removed] } : v,
      )
    }
  }
  return { identities, selectors }
}
