import { BandwidthError } from './errors'
import { applyEgressQdisc, checkIfname, checkNetnsName, type FqSupport, probeSchFq } from './fq'
import { type BandwidthAnnotations, type BandwidthLimit, parseBandwidthAnnotations } from './rate'
import {
  decodeThrottleKey,
  decodeThrottleValue,
  encodeThrottleKey,
  encodeThrottleValue,
  type ThrottleDirection,
  type ThrottleMode,
  type ThrottleValue,
  throttleEntry,
} from './throttle'

/**
 * The part of a BPF map the manager uses: `BpfMap` of @membrane/bpf-loader-napi fits, and so
 * does an in-memory fake in tests.
 */
export interface ThrottleMapLike {
  lookup(key: Buffer): Buffer | undefined
  update(key: Buffer, value: Buffer, flags?: 'any' | 'noexist' | 'exist'): void
  delete(key: Buffer): boolean
  /** All keys; needed by {@link BandwidthManager.reconcile} and to adopt entries on create. */
  keys?(): Buffer[]
}

/** lib/events.h direction numbers, as the `mb_throttle_on` bits use them. */
const DIRECTION_NUMBER: Readonly<Record<ThrottleDirection, number>> = { ingress: 1, egress: 2 }

const u32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n >>> 0, 0)
  return b
}

/** The status `mode` strings. Exactly one is reported; it says what is enforced, no more. */
export const BANDWIDTH_MODE = {
  edt: 'edt+fq',
  tokenBucket: 'token-bucket (kernel lacks sch_fq)',
} as const

/** One of {@link BANDWIDTH_MODE}'s values. */
export type BandwidthMode = (typeof BANDWIDTH_MODE)[keyof typeof BANDWIDTH_MODE]

/** What is enforced right now, and how. */
export interface BandwidthStatus {
  /** `'edt+fq'` when the kernel has sch_fq, else `'token-bucket (kernel lacks sch_fq)'`. */
  mode: BandwidthMode
  /** How egress limits are enforced. */
  egress: 'edt-shaping' | 'token-bucket-policing'
  /** Ingress limits are always policed by a token bucket (burst of one second). */
  ingress: 'token-bucket-policing'
  /**
   * True only when egress packets are really paced: sch_fq exists AND fq was installed on at
   * least one device by {@link BandwidthManager.prepareEgressDevice}. In token-bucket mode it is
   * false: limits are enforced by dropping, not by shaping.
   */
  shaping: boolean
  /** Devices on which this manager installed fq. */
  fqDevices: string[]
  /** The fq probe's findings. */
  fq: FqSupport
  /** Endpoints with at least one limit. */
  endpoints: number
  /** One honest sentence for humans (CLI, logs). */
  summary: string
}

/** Options of {@link BandwidthManager.create}. */
export interface BandwidthManagerOptions {
  /** The throttle map (`<pinRoot>/mb_throttle`, opened with the loader's openPinnedMap). */
  map: ThrottleMapLike
  /**
   * `<pinRoot>/mb_throttle_on` (lib/edt.h): per-endpoint bits of which directions have an
   * entry. Given it (with a throttle map that has `keys()`, so existing entries are adopted),
   * the manager keeps the bits and turns the programs' switch on, so packets of endpoints
   * without limits skip the throttle lookup; without it the programs look every packet up
   * (correct, a little slower). Once the switch is on, every writer of the throttle map must
   * keep the bits: use this manager (or pass `present`) for all of them.
   */
  present?: ThrottleMapLike
  /** Known fq support; default: {@link probeSchFq} in a throwaway namespace. */
  fq?: FqSupport
  /** EDT drop horizon in ns for new entries; default 2 s. */
  horizonNs?: bigint | number
  /** Token-bucket depth in ns of traffic for new entries; default 1 s. */
  burstNs?: bigint | number
}

/** Limits for one endpoint: a limit, a bytes/s number, or absent (= no limit, entry removed). */
export interface EndpointLimits {
  egress?: BandwidthLimit | number
  ingress?: BandwidthLimit | number
}

const DIRECTIONS: readonly ThrottleDirection[] = ['egress', 'ingress']

/**
 * Owns the throttle map's entries and says honestly how limits are enforced.
 *
 * With sch_fq, egress entries are written in EDT mode (packets get departure times; fq on the
 * egress device paces them). Without it (this project's CI kernel), egress entries are written
 * in police mode: the BPF token bucket drops beyond the limit, and the status says
 * `token-bucket (kernel lacks sch_fq)`. Ingress is always a token bucket.
 *
 * @example
 * const map = openPinnedMap('/sys/fs/bpf/membrane/mb_throttle')
 * const bw = await BandwidthManager.create({ map })
 * bw.applyAnnotations(42, pod.metadata.annotations)
 * console.log(bw.status().mode) // 'token-bucket (kernel lacks sch_fq)' on a kernel without fq
 */
export class BandwidthManager {
  readonly #map: ThrottleMapLike
  readonly #present: ThrottleMapLike | undefined
  readonly #fq: FqSupport
  readonly #horizonNs: bigint | number | undefined
  readonly #burstNs: bigint | number | undefined
  readonly #endpoints = new Map<number, Set<ThrottleDirection>>()
  readonly #fqDevices = new Set<string>()

  private constructor(options: BandwidthManagerOptions & { fq: FqSupport }) {
    this.#map = options.map
    this.#present = options.present
    this.#fq = options.fq
    this.#horizonNs = options.horizonNs
    this.#burstNs = options.burstNs
  }

  /**
   * Create a manager; probes sch_fq (in a throwaway namespace) unless `fq` is given. Entries
   * already in a pinned map (an agent restart) are adopted, not flushed; egress entries written
   * in the other mode are switched to this kernel's mode.
   */
  static async create(options: BandwidthManagerOptions): Promise<BandwidthManager> {
    const fq = options.fq ?? (await probeSchFq())
    const manager = new BandwidthManager({ ...options, fq })
    manager.#adopt()
    // The switch goes on only when every existing entry could be adopted (and so got its
    // bits): a throttle map without keys() leaves it as it is.
    if (manager.#present && manager.#map.keys) {
      for (const [id, dirs] of manager.#endpoints) manager.#writePresent(id, dirs)
      manager.#present.update(u32(0), u32(1)) // the bits are kept from now on
    }
    return manager
  }

  /** Write an endpoint's `mb_throttle_on` bits (1 << direction number). */
  #writePresent(endpointId: number, dirs: ReadonlySet<ThrottleDirection>): void {
    if (!this.#present) return
    let bits = 0
    for (const d of dirs) bits |= 1 << DIRECTION_NUMBER[d]
    const cur = this.#present.lookup(u32(endpointId))
    if (!cur || cur.readUInt32LE(0) !== bits) this.#present.update(u32(endpointId), u32(bits))
  }

  #adopt(): void {
    for (const key of this.#map.keys?.() ?? []) {
      let k: ReturnType<typeof decodeThrottleKey>
      try {
        k = decodeThrottleKey(key)
      } catch {
        continue // not ours to interpret; leave it
      }
      const raw = this.#map.lookup(key)
      if (!raw) continue
      const set = this.#endpoints.get(k.endpointId) ?? new Set<ThrottleDirection>()
      set.add(k.direction)
      this.#endpoints.set(k.endpointId, set)
      const value = decodeThrottleValue(raw)
      const mode: ThrottleMode = k.direction === 'ingress' ? 'police' : this.egressMode
      if (value.mode !== mode) this.#map.update(key, encodeThrottleValue({ ...value, mode }))
    }
  }

  /** Endpoint ids with at least one limit, ascending. */
  endpoints(): number[] {
    return [...this.#endpoints.keys()].sort((a, b) => a - b)
  }

  /**
   * Make the map hold exactly `desired` (endpoint id -> limits), by difference: entries of
   * endpoints not in `desired` are deleted, the others set (keeping their counters). Everything
   * is validated before the first write. Needs a map with `keys()`.
   */
  reconcile(desired: ReadonlyMap<number, EndpointLimits>): { set: number[]; removed: number[] } {
    if (!this.#map.keys) {
      throw new BandwidthError('NOT_SUPPORTED', 'reconcile: the throttle map has no keys()', {
        field: 'map.keys',
      })
    }
    for (const [id, limits] of desired) this.#entries(id, limits) // validate everything first
    const present = new Set<number>(this.#endpoints.keys())
    for (const key of this.#map.keys()) {
      try {
        present.add(decodeThrottleKey(key).endpointId)
      } catch {
        // a key this package did not write: leave it
      }
    }
    const removed: number[] = []
    for (const id of present) {
      if (desired.has(id)) continue
      this.setEndpoint(id, {})
      removed.push(id)
    }
    for (const [id, limits] of desired) this.setEndpoint(id, limits)
    return {
      set: [...desired.keys()].sort((a, b) => a - b),
      removed: removed.sort((a, b) => a - b),
    }
  }

  /** How egress entries are written: `'edt'` with sch_fq, `'police'` without. */
  get egressMode(): ThrottleMode {
    return this.#fq.fq ? 'edt' : 'police'
  }

  /** What is enforced, and how. Never claims shaping that is not happening. */
  status(): BandwidthStatus {
    const edt = this.#fq.fq
    const fqDevices = [...this.#fqDevices]
    const shaping = edt && fqDevices.length > 0
    const mode = edt ? BANDWIDTH_MODE.edt : BANDWIDTH_MODE.tokenBucket
    let summary: string
    if (!edt) {
      summary =
        'egress limits are POLICED by a BPF token bucket (drops beyond the rate, burst 1 s); ' +
        `EDT shaping is NOT active because the kernel lacks sch_fq (${this.#fq.detail})`
    } else if (!shaping) {
      summary =
        'egress packets get EDT departure times, but fq is installed on no device yet: ' +
        'nothing is paced until prepareEgressDevice() runs'
    } else {
      summary = `egress limits are shaped by EDT and paced by fq on ${fqDevices.join(', ')}`
    }
    return {
      mode,
      egress: edt ? 'edt-shaping' : 'token-bucket-policing',
      ingress: 'token-bucket-policing',
      shaping,
      fqDevices,
      fq: { ...this.#fq },
      endpoints: this.#endpoints.size,
      summary: `${summary}; ingress limits are policed by a token bucket`,
    }
  }

  /**
   * Put fq on an egress device (mq + fq leaves on multiqueue devices), only where sch_fq exists.
   * Without sch_fq it changes nothing and returns `false`, so callers cannot mistake it for
   * shaping. Pass `netns` to act inside a named namespace.
   */
  async prepareEgressDevice(
    ifname: string,
    options: { netns?: string; txQueues?: number } = {},
  ): Promise<boolean> {
    checkIfname(ifname)
    if (options.netns !== undefined) checkNetnsName(options.netns)
    if (!this.#fq.fq) return false
    await applyEgressQdisc(ifname, {
      support: this.#fq,
      ...(this.#horizonNs === undefined ? {} : { horizonNs: this.#horizonNs }),
      ...options,
    })
    this.#fqDevices.add(options.netns ? `${options.netns}/${ifname}` : ifname)
    return true
  }

  /**
   * Set an endpoint's limits. A direction left out is unlimited (its entry is deleted).
   * Changing a limit keeps the entry's counters and state. Validates everything first, so a bad
   * argument changes nothing.
   */
  setEndpoint(endpointId: number, limits: EndpointLimits): void {
    const entries = this.#entries(endpointId, limits)
    const active = new Set<ThrottleDirection>()
    // Bits of removed directions go before their entries; bits of new ones after theirs.
    const kept = new Set(
      [...(this.#endpoints.get(endpointId) ?? [])].filter((d) => limits[d] !== undefined),
    )
    this.#writePresent(endpointId, kept)
    for (const { direction, entry } of entries) {
      const key = encodeThrottleKey({ endpointId, direction })
      if (!entry) {
        this.#map.delete(key)
        continue
      }
      const old = this.#map.lookup(key)
      const value: ThrottleValue = old
        ? { ...decodeThrottleValue(old), ...config(entry.value) }
        : entry.value
      this.#map.update(key, encodeThrottleValue(value))
      active.add(direction)
    }
    this.#writePresent(endpointId, active)
    if (active.size > 0) this.#endpoints.set(endpointId, active)
    else this.#endpoints.delete(endpointId)
  }

  #entries(endpointId: number, limits: EndpointLimits) {
    return DIRECTIONS.map((direction) => {
      const limit = limits[direction]
      if (limit === undefined) return { direction, entry: undefined }
      const bytesPerSecond = typeof limit === 'number' ? limit : limit.bytesPerSecond
      const entry = throttleEntry({
        endpointId,
        direction,
        bytesPerSecond,
        mode: this.egressMode,
        ...(this.#horizonNs === undefined ? {} : { horizonNs: this.#horizonNs }),
        ...(this.#burstNs === undefined ? {} : { burstNs: this.#burstNs }),
      })
      return { direction, entry }
    })
  }

  /**
   * Set an endpoint's limits from pod annotations (`kubernetes.io/egress-bandwidth`,
   * `kubernetes.io/ingress-bandwidth`). An invalid annotation throws a BandwidthError that names
   * it and its value, and nothing is written.
   */
  applyAnnotations(
    endpointId: number,
    annotations: Readonly<Record<string, string | undefined>> | undefined,
  ): BandwidthAnnotations {
    const parsed = parseBandwidthAnnotations(annotations)
    this.setEndpoint(endpointId, parsed)
    return parsed
  }

  /** Remove both of an endpoint's entries. */
  removeEndpoint(endpointId: number): void {
    this.setEndpoint(endpointId, {})
  }

  /** The entry of one endpoint and direction (config, state and counters), if any. */
  entry(endpointId: number, direction: ThrottleDirection): ThrottleValue | undefined {
    const v = this.#map.lookup(encodeThrottleKey({ endpointId, direction }))
    return v ? decodeThrottleValue(v) : undefined
  }
}

function config(v: ThrottleValue): Partial<ThrottleValue> {
  return {
    bytesPerSecond: v.bytesPerSecond,
    horizonNs: v.horizonNs,
    burstNs: v.burstNs,
    mode: v.mode,
  }
}
