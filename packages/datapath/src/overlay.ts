import { DatapathError, DatapathErrorCode, describeValue } from './errors'

/**
 * How pods on different nodes reach each other. `tunnel`: a VXLAN overlay that carries the
 * sender's identity in the VNI ({@link Datapath.attachOverlay}); `native`: the underlay routes
 * pod CIDRs to node addresses and the receiving node takes the source identity from its ipcache.
 */
export type RoutingMode = 'tunnel' | 'native'

/**
 * Bytes the VXLAN encapsulation adds to a packet: outer Ethernet (14) + IPv4 (20) + UDP (8) +
 * VXLAN (8). C: `MB_OVERLAY_OVERHEAD` in bpf-src/lib/overlay.h.
 */
export const VXLAN_OVERHEAD = 50

/** The overlay's UDP port, Cilium's (the Linux VXLAN driver's historic default). */
export const VXLAN_PORT = 8472

/**
 * The MTU to give a workload's interface so that its packets fit the underlay once
 * encapsulated (tunnel mode: the underlay's minus {@link VXLAN_OVERHEAD}; native routing: the
 * underlay's). Default mode `tunnel`.
 *
 * @example
 * podMtu(1500) // 1450
 * podMtu(9000, 'native') // 9000
 */
export function podMtu(underlayMtu: number, mode: RoutingMode = 'tunnel'): number {
  if (!Number.isInteger(underlayMtu) || underlayMtu < 68 + VXLAN_OVERHEAD || underlayMtu > 65535)
    throw new DatapathError(
      DatapathErrorCode.INVALID_VALUE,
      `expected an underlay MTU ${68 + VXLAN_OVERHEAD}..65535, got ${describeValue(underlayMtu)}`,
      { path: 'underlayMtu' },
    )
  if (mode !== 'tunnel' && mode !== 'native')
    throw new DatapathError(
      DatapathErrorCode.INVALID_VALUE,
      `expected routing mode "tunnel" or "native", got ${describeValue(mode)}`,
      { path: 'mode' },
    )
  return mode === 'tunnel' ? underlayMtu - VXLAN_OVERHEAD : underlayMtu
}
