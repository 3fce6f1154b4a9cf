import type { L7Policy } from '@membrane/policy'
import type { ProxyOrigin } from '../origin'
import type { L7PolicySource } from '../policy'

/** How long one connection may reuse a policy answer when the source has no revision. */
const TTL_MS = 1000

/**
 * The L7 policy of one connection's flow, re-asked when the source's revision changes (and at
 * least every second, so identity and FQDN changes are seen too).
 */
export class ConnectionPolicy {
  #value: L7Policy | undefined
  #revision: number | undefined = Number.NaN
  #at = 0
  #generation = 0

  /** How many times the source was asked: a decision made under the same generation holds. */
  get generation(): number {
    return this.#generation
  }

  constructor(
    private readonly source: L7PolicySource,
    private readonly origin: ProxyOrigin,
    private readonly protocol: 'TCP' | 'UDP',
  ) {}

  get(): L7Policy | undefined {
    const now = Date.now()
    const rev = this.source.revision
    if (rev !== this.#revision || now - this.#at > TTL_MS) {
      const o = this.origin
      this.#value = this.source.rulesFor({
        endpointId: o.endpointId,
        direction: o.direction,
        peerIdentity: o.direction === 'ingress' ? o.srcIdentity : o.dstIdentity,
        port: o.port,
        protocol: this.protocol,
      })
      this.#revision = rev
      this.#at = now
      this.#generation++
    }
    return this.#value
  }
}
