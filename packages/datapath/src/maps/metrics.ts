import { dropReasonName, u32 as u32Codec } from '@membrane/types'
import { TrafficDirection } from '../constants'
import type { MapLike } from '../internal/loader'
import { METRICS_ENTRIES, metricsIndex, metricsValueCodec } from '../layouts'

/** One counter: packets and bytes forwarded (reason 0) or dropped for a reason, per direction. */
export interface Counter {
  /** 0 = forwarded, else the drop reason (133 ...). */
  reason: number
  /** 'FORWARDED' or the drop reason's name. */
  reasonName: string
  direction: 'ingress' | 'egress' | 'unknown'
  packets: bigint
  bytes: bigint
}

const DIRS: Record<number, Counter['direction']> = {
  [TrafficDirection.INGRESS]: 'ingress',
  [TrafficDirection.EGRESS]: 'egress',
}

/**
 * Per-CPU forward/drop counters (`mb_metrics`, a per-CPU array indexed by
 * `reason << 2 | direction`), summed over CPUs.
 */
export class MetricsMap {
  readonly #map: MapLike

  constructor(map: MapLike) {
    this.#map = map
  }

  /** Every non-zero counter, summed over CPUs. */
  read(): Counter[] {
    const out: Counter[] = []
    for (let idx = 0; idx < METRICS_ENTRIES; idx++) {
      const per = this.#map.lookupPerCpu?.(u32Codec.encode(idx)) ?? []
      let packets = 0n
      let bytes = 0n
      for (const vb of per) {
        const v = metricsValueCodec.decode(vb)
        packets += v.packets
        bytes += v.bytes
      }
      if (packets === 0n && bytes === 0n) continue
      const reason = idx >> 2
      out.push({
        reason,
        reasonName: reason === 0 ? 'FORWARDED' : (dropReasonName(reason) ?? `UNKNOWN_${reason}`),
        direction: DIRS[idx & 3] ?? 'unknown',
        packets,
        bytes,
      })
    }
    return out
  }

  /** The counter of one reason and direction (0 when never counted). */
  get(reason: number, direction: 'ingress' | 'egress'): { packets: bigint; bytes: bigint } {
    const idx = metricsIndex(
      reason,
      direction === 'ingress' ? TrafficDirection.INGRESS : TrafficDirection.EGRESS,
    )
    let packets = 0n
    let bytes = 0n
    for (const vb of this.#map.lookupPerCpu?.(u32Codec.encode(idx)) ?? []) {
      const v = metricsValueCodec.decode(vb)
      packets += v.packets
      bytes += v.bytes
    }
    return { packets, bytes }
  }

  /** Packets counted for one reason (0 = forwarded), optionally one direction. */
  packets(reason: number, direction?: 'ingress' | 'egress'): bigint {
    if (direction) return this.get(reason, direction).packets
    return this.get(reason, 'ingress').packets + this.get(reason, 'egress').packets
  }
}
