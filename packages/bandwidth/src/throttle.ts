import { named, pad, struct, u8, u16, u32, u64 } from '@membrane/types'
import { BandwidthError } from './errors'

/** The throttle map's name (bpf-src/lib/edt.h). */
export const THROTTLE_MAP_NAME = 'mb_throttle'
/** `MB_THROTTLE_MAX_ENTRIES` */
export const THROTTLE_MAX_ENTRIES = 16384

/**
 * `struct mb_throttle_key` (lib/edt.h). Direction is the `MB_DIR_*` number; the repository's
 * BTF check compares this codec with the compiled object.
 */
export const throttleKeyCodec = struct('mb_throttle_key', {
  endpointId: u16,
  direction: u8,
  pad: pad(1),
})

/** `struct mb_throttle_val` (lib/edt.h): mode is `MB_THROTTLE_MODE_*`; the spin lock is zero. */
export const throttleValueCodec = struct('mb_throttle_val', {
  bytesPerSecond: named('bytes_per_sec', u64),
  horizonNs: u64,
  burstNs: u64,
  tLast: u64,
  tTat: u64,
  packets: u64,
  bytes: u64,
  drops: u64,
  dropBytes: u64,
  mode: u32,
  lock: pad(4, 4),
})

/** The struct codecs this package declares, for the BTF check. */
export const THROTTLE_STRUCT_CODECS = [throttleKeyCodec, throttleValueCodec] as const

/** `sizeof(struct mb_throttle_key)` */
export const THROTTLE_KEY_SIZE = throttleKeyCodec.size
/** `sizeof(struct mb_throttle_val)` */
export const THROTTLE_VALUE_SIZE = throttleValueCodec.size

/** EDT drop horizon when an entry leaves it at 0: 2 s (Cilium's default). */
export const DEFAULT_HORIZON_NS = 2_000_000_000n
/** Token-bucket depth when an entry leaves it at 0: one second of traffic at the rate. */
export const DEFAULT_BURST_NS = 1_000_000_000n

/** Entry direction, numbered like lib/events.h (`MB_DIR_INGRESS` = 1, `MB_DIR_EGRESS` = 2). */
export type ThrottleDirection = 'ingress' | 'egress'
/** `MB_DIR_*` numbers by direction. */
export const THROTTLE_DIRECTION = { ingress: 1, egress: 2 } as const

/**
 * How an egress entry is enforced: `edt` stamps departure times for fq to pace;
 * `police` drops beyond a token bucket (the fallback without sch_fq). Ingress always polices.
 */
export type ThrottleMode = 'edt' | 'police'
/** `MB_THROTTLE_MODE_*` numbers by mode. */
export const THROTTLE_MODE = { edt: 0, police: 1 } as const

/** Key of the throttle map. */
export interface ThrottleKey {
  endpointId: number
  direction: ThrottleDirection
}

/** Value of the throttle map: configuration (written by the agent) and state (kept by BPF). */
export interface ThrottleValue {
  bytesPerSecond: bigint
  /** EDT drop horizon in ns; 0n means the default (2 s). */
  horizonNs: bigint
  /** Token-bucket depth in ns of traffic at the rate; 0n means the default (1 s). */
  burstNs: bigint
  /** EDT: departure time of the last scheduled packet (CLOCK_MONOTONIC ns). */
  tLast: bigint
  /** Token bucket: time at which the bucket is full again (0n = full). */
  tTat: bigint
  packets: bigint
  bytes: bigint
  drops: bigint
  dropBytes: bigint
  mode: ThrottleMode
}

/** Encode a key into the 4-byte `struct mb_throttle_key`. */
export function encodeThrottleKey(key: ThrottleKey): Buffer {
  checkEndpointId(key.endpointId)
  const direction = THROTTLE_DIRECTION[key.direction]
  if (direction === undefined) {
    throw new BandwidthError(
      'INVALID_OPTION',
      `direction: expected 'ingress' or 'egress', got ${JSON.stringify(key.direction)}`,
      { field: 'direction', value: key.direction },
    )
  }
  return throttleKeyCodec.encode({ endpointId: key.endpointId, direction })
}

/** Decode a 4-byte `struct mb_throttle_key`. */
export function decodeThrottleKey(buf: Uint8Array): ThrottleKey {
  const raw = throttleKeyCodec.decode(sized(buf, THROTTLE_KEY_SIZE, 'throttle key'))
  const d = raw.direction
  const direction = d === 1 ? 'ingress' : d === 2 ? 'egress' : undefined
  if (!direction) {
    throw new BandwidthError('INVALID_VALUE', `throttle key: direction ${d} is not 1 or 2`, {
      field: 'direction',
      value: d,
    })
  }
  return { endpointId: raw.endpointId, direction }
}

/** Encode a value into the 80-byte `struct mb_throttle_val` (the spin lock is written as 0). */
export function encodeThrottleValue(v: ThrottleValue): Buffer {
  const mode = THROTTLE_MODE[v.mode]
  if (mode === undefined) {
    throw new BandwidthError(
      'INVALID_OPTION',
      `mode: expected 'edt' or 'police', got ${JSON.stringify(v.mode)}`,
      { field: 'mode', value: v.mode },
    )
  }
  return throttleValueCodec.encode({
    bytesPerSecond: u64Of(v.bytesPerSecond, 'bytesPerSecond'),
    horizonNs: u64Of(v.horizonNs, 'horizonNs'),
    burstNs: u64Of(v.burstNs, 'burstNs'),
    tLast: u64Of(v.tLast, 'tLast'),
    tTat: u64Of(v.tTat, 'tTat'),
    packets: u64Of(v.packets, 'packets'),
    bytes: u64Of(v.bytes, 'bytes'),
    drops: u64Of(v.drops, 'drops'),
    dropBytes: u64Of(v.dropBytes, 'dropBytes'),
    mode,
  })
}

/** Decode an 80-byte `struct mb_throttle_val`. */
export function decodeThrottleValue(buf: Uint8Array): ThrottleValue {
  const raw = throttleValueCodec.decode(sized(buf, THROTTLE_VALUE_SIZE, 'throttle value'))
  return { ...raw, mode: raw.mode === THROTTLE_MODE.police ? 'police' : 'edt' }
}

/** What {@link throttleEntry} needs. */
export interface ThrottleEntryOptions {
  /** Endpoint id, 0..65535 (the endpoint program's `cfg_endpoint_id`). */
  endpointId: number
  direction: ThrottleDirection
  /** The limit in bytes per second (`BandwidthLimit.bytesPerSecond`), > 0. */
  bytesPerSecond: number | bigint
  /**
   * Egress enforcement. Default `'edt'`; use `'police'` where the kernel lacks sch_fq.
   * Ingress entries are always `'police'` (a token bucket), whatever is passed.
   */
  mode?: ThrottleMode
  /** EDT drop horizon in ns (> 0). Default 2 s. */
  horizonNs?: number | bigint
  /** Token-bucket depth in ns of traffic at the rate (> 0). Default 1 s. */
  burstNs?: number | bigint
}

/**
 * Compute the throttle map entry for one endpoint and direction, with fresh state (empty EDT
 * history, full token bucket, zero counters).
 *
 * @example
 * const { key, value } = throttleEntry({ endpointId: 7, direction: 'egress', bytesPerSecond: 1_250_000 })
 * map.update(encodeThrottleKey(key), encodeThrottleValue(value))
 */
export function throttleEntry(options: ThrottleEntryOptions): {
  key: ThrottleKey
  value: ThrottleValue
} {
  checkEndpointId(options.endpointId)
  const rate = positive(options.bytesPerSecond, 'bytesPerSecond')
  const horizonNs =
    options.horizonNs === undefined ? DEFAULT_HORIZON_NS : positive(options.horizonNs, 'horizonNs')
  const burstNs =
    options.burstNs === undefined ? DEFAULT_BURST_NS : positive(options.burstNs, 'burstNs')
  const mode: ThrottleMode = options.direction === 'ingress' ? 'police' : (options.mode ?? 'edt')
  const key: ThrottleKey = { endpointId: options.endpointId, direction: options.direction }
  encodeThrottleKey(key) // validates the direction
  return {
    key,
    value: {
      bytesPerSecond: rate,
      horizonNs,
      burstNs,
      tLast: 0n,
      tTat: 0n,
      packets: 0n,
      bytes: 0n,
      drops: 0n,
      dropBytes: 0n,
      mode,
    },
  }
}

/**
 * Tokens (bytes) in an entry's bucket at `nowNs` (CLOCK_MONOTONIC, e.g. `process.hrtime.bigint()`):
 * `min(burst, (now - t_tat) * rate / 1e9)`, the token count the BPF side keeps implicitly.
 */
export function bucketTokens(value: ThrottleValue, nowNs: bigint): bigint {
  const rate = value.bytesPerSecond
  if (rate === 0n) return 0n
  const depth = value.burstNs === 0n ? DEFAULT_BURST_NS : value.burstNs
  const burst = (depth * rate) / 1_000_000_000n
  if (value.tTat === 0n) return burst // never used: a full bucket
  if (nowNs <= value.tTat) return 0n
  const tokens = ((nowNs - value.tTat) * rate) / 1_000_000_000n
  return tokens > burst ? burst : tokens
}

function checkEndpointId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xffff) {
    throw new BandwidthError(
      'INVALID_OPTION',
      `endpointId: expected an integer 0..65535, got ${String(id)}`,
      { field: 'endpointId', value: id },
    )
  }
}

const U64_MAX = (1n << 64n) - 1n

function u64Of(v: bigint, field: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) {
    throw new BandwidthError(
      'INVALID_OPTION',
      `${field}: expected a u64 bigint, got ${String(v)}`,
      {
        field,
        value: v,
      },
    )
  }
  return v
}

function positive(v: number | bigint, field: string): bigint {
  const ok =
    (typeof v === 'bigint' && v > 0n && v <= U64_MAX) ||
    (typeof v === 'number' && Number.isSafeInteger(v) && v > 0)
  if (!ok) {
    throw new BandwidthError(
      'INVALID_OPTION',
      `${field}: expected a positive integer, got ${String(v)}`,
      { field, value: v },
    )
  }
  return BigInt(v)
}

function sized(buf: Uint8Array, size: number, what: string): Uint8Array {
  if (buf.length !== size) {
    throw new BandwidthError(
      'INVALID_VALUE',
      `${what}: expected ${size} bytes, got ${buf.length}`,
      {
        field: what,
        value: buf.length,
      },
    )
  }
  return buf
}
