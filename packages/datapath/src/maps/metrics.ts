import { TrafficDirection } from '../constants'
import { dropReasonName } from '../drop-reasons'
import type { MapLike } from '../internal/loader'
import { metricsKeyCodec, metricsValueCodec } from '../layouts'

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

/** Per-CPU forward/drop counters (`mb_metrics`), summed over CPUs. */
export class MetricsMap {
  readonly #map: MapLike

  constructor(map: MapLike) {
    this.#map = map
  }

  /** Every counter, summed over CPUs. */
  read(): Counter[] {
    const out: Counter[] = []
    for (const kb of this.#map.keys()) {
      const per = this.#map.lookupPerCpu?.(kb) ?? []
      let packets = 0n
      let bytes = 0n
      for (const vb of per) {
        const v = metricsValueCodec.decode(vb)
        packets += v.packets
        bytes += v.bytes
      }
      const k = metricsKeyCodec.decode(kb)
      out.push({
        reason: k.reason,
        reasonName:
          k.reason === 0 ? 'FORWARDED' : (dropReasonName(k.reason) ?? `UNKNOWN_${k.reason}`),
        direction: DIRS[k.direction] ?? 'unknown',
        packets,
        bytes,
      })
    }
    return out.sort((a, b) => a.reason - b.reason || a.direction.localeCompare(b.direction))
  }

  /** Packets counted for one reason (0 = forwarded), optionally one direction. */
  packets(reason: number, direction?: 'ingress' | 'egress'): bigint {
    return this.read()
      .filter((c) => c.reason === reason && (direction === undefined || c.direction === direction))
      .reduce((a, c) => a + c.packets, 0n)
  }
}
