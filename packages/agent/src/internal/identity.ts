import {
  type IdentityAllocator,
  IdentityError,
  type IdentityRecord,
  IPCache,
  Labels,
  MemoryAllocator,
} from '@membrane/identity'
import { NAMESPACE_LABELS_PREFIX, POD_NAMESPACE_LABEL } from '@membrane/types'
import { AgentError } from '../errors'
import type { EndpointRecord } from '../state'

/**
 * The source-prefixed identity labels of an endpoint, as Cilium builds them for a pod:
 * `k8s:org=empire`, the namespace label, and the namespace's `kubernetes.io/metadata.name` label
 * (what a NetworkPolicy namespaceSelector matches).
 */
export function endpointIdentityLabels(ep: Pick<EndpointRecord, 'labels' | 'namespace'>): string[] {
  return [
    ...Object.entries(ep.labels).map(([k, v]) => `k8s:${k}=${v}`),
    `k8s:${POD_NAMESPACE_LABEL}=${ep.namespace}`,
    `k8s:${NAMESPACE_LABELS_PREFIX}kubernetes.io/metadata.name=${ep.namespace}`,
  ]
}

/**
 * The agent's use of @membrane/identity: one allocator (memory, the embedded default) and the
 * node's ipcache. The memory backend forgets ids when the process exits, while the pinned BPF
 * maps keep them; {@link restore} re-allocates the previous ids in order so a restarted agent
 * gets the same numbers back (checked, and logged when one differs).
 */
export class IdentityService {
  readonly allocator: IdentityAllocator
  readonly ipcache = new IPCache()

  constructor(allocator?: IdentityAllocator) {
    this.allocator = allocator ?? new MemoryAllocator()
  }

  /** Allocate (or reference) the identity of an endpoint's labels. */
  async allocate(ep: Pick<EndpointRecord, 'labels' | 'namespace'>): Promise<number> {
    try {
      return (await this.allocator.allocate(endpointIdentityLabels(ep))).id
    } catch (error) {
      // The store (etcd) not answering is an outage, not a failure of the agent: 503, retryable.
      if (error instanceof IdentityError && error.code === 'BACKEND_UNAVAILABLE') {
        throw new AgentError(
          'UNAVAILABLE',
          `identity store unavailable: ${error.message}; retry once it is back`,
          { field: 'kvstore', cause: error },
        )
      }
      throw new AgentError('INTERNAL', `identity allocation failed: ${(error as Error).message}`, {
        cause: error,
      })
    }
  }

  /** Drop the endpoint's reference. */
  async release(ep: Pick<EndpointRecord, 'labels' | 'namespace'>): Promise<void> {
    await this.allocator.release(endpointIdentityLabels(ep)).catch(() => false)
  }

  /**
   * Re-allocate the identities of restored endpoints, lowest previous id first. With the memory
   * backend, ids are handed out in order from 256, so placeholders fill the gaps between
   * previous ids and are released afterwards. Returns the endpoints whose id changed.
   */
  async restore(endpoints: EndpointRecord[]): Promise<EndpointRecord[]> {
    const changed: EndpointRecord[] = []
    const ordered = [...endpoints].sort((a, b) => (a.identity ?? 1e12) - (b.identity ?? 1e12))
    const placeholders: string[][] = []
    let last = 255
    for (const ep of ordered) {
      const want = ep.identity
      const known = this.allocator.lookupByLabels(endpointIdentityLabels(ep))
      if (want !== undefined && !known && this.allocator.backend === 'memory') {
        while (last + 1 < want && placeholders.length < 65536) {
          const probe = [`container:membrane-restore-gap=${placeholders.length}`]
          placeholders.push(probe)
          last = (await this.allocator.allocate(probe)).id
        }
      }
      const id = await this.allocate(ep)
      if (id > last) last = id
      if (id !== want) {
        changed.push(ep)
        ep.identity = id
      }
    }
    for (const p of placeholders) await this.allocator.release(p)
    return changed
  }

  /** Every identity, reserved ones included. */
  list(): IdentityRecord[] {
    return this.allocator.list()
  }

  /** The labels of an identity as strings, if known. */
  labelsOf(id: number): string[] | undefined {
    const i = this.allocator.lookupById(id)
    return i ? [...Labels.from(i.labels as never).toStrings()] : undefined
  }

  async close(): Promise<void> {
    await this.allocator.close()
  }
}
