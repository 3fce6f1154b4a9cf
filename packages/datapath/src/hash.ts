import { flowHash } from '@membrane/maglev'

/**
 * The Maglev slot hash the datapath computes for an IPv4 flow (lib/lb.h mb_lb4_flow_hash,
 * identical to @membrane/maglev's flowHash): `jhash_3words(saddr, dport << 16 | sport, proto,
 * seed)` over the network-order words. The backend is `table[flowHash4(...) % table.length]`.
 */
export function flowHash4(
  flow: { saddr: string; sport: number; dport: number; protocol?: number | 'TCP' | 'UDP' },
  seed?: string,
): number {
  return flowHash(
    { saddr: flow.saddr, sport: flow.sport, dport: flow.dport, protocol: flow.protocol ?? 'TCP' },
    seed ? { seed } : {},
  )
}
