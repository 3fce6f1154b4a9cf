import { BandwidthError } from './errors'
import { DEFAULT_BURST_NS, DEFAULT_HORIZON_NS } from './throttle'

/**
 * MODELS of the BPF enforcement in bpf-src/lib/edt.h and lib/token_bucket.h, for tests and for
 * explaining behaviour. They use the same integer arithmetic as the BPF code, but they are not
 * measurements: every result carries `kind: 'model'` so it cannot be mistaken for one.
 */

const NS = 1_000_000_000n

/** One packet of a trace fed to a model. Times are ns on one clock (CLOCK_MONOTONIC in BPF). */
export interface TracePacket {
  /** When the packet reaches the program (`bpf_ktime_get_ns()` at that moment). */
  arrivalNs: bigint | number
  /** Wire length in bytes. */
  len: number
  /** A departure time already on the packet (skb->tstamp, e.g. from TCP's own pacing). */
  tstampNs?: bigint | number
}

/** What the EDT model decided for one packet. */
export interface EdtModelPacket {
  arrivalNs: bigint
  len: number
  /** `send`: under the rate, leaves at once; `delay`: stamped for later; `drop`: beyond horizon. */
  verdict: 'send' | 'delay' | 'drop'
  /** When fq would release it; `null` when dropped. */
  departureNs: bigint | null
  /** `departureNs - arrivalNs` (0n when sent at once); `null` when dropped. */
  delayNs: bigint | null
}

/** Output of {@link edtModel}; `kind: 'model'` marks it as computed, not measured. */
export interface EdtModelResult {
  kind: 'model'
  model: 'edt'
  bytesPerSecond: bigint
  horizonNs: bigint
  packets: EdtModelPacket[]
  /** `t_last` after the trace (the map's state). */
  tLast: bigint
  drops: number
}

/** Options of {@link edtModel}. */
export interface EdtModelOptions {
  bytesPerSecond: bigint | number
  /** Drop horizon, default 2 s. */
  horizonNs?: bigint | number
  /** Initial `t_last` (default 0n: a fresh entry). */
  tLast?: bigint | number
}

/**
 * MODEL of `mb_edt_sched()`: departure times for a packet trace under Earliest Departure Time.
 * Per packet: t = max(tstamp, arrival); delay = len·1e9/rate; t_next = t_last + delay;
 * t_next <= t: send now, t_last = t; t_next - arrival > horizon: drop; else t_last = t_next and
 * the packet departs at t_next.
 *
 * @example
 * edtModel([{ arrivalNs: 0, len: 1000 }, { arrivalNs: 0, len: 1000 }], { bytesPerSecond: 1e6 })
 *   .packets.map((p) => p.departureNs) // [1000000n, 2000000n] — model output (t_last starts at 0)
 */
export function edtModel(trace: readonly TracePacket[], options: EdtModelOptions): EdtModelResult {
  const rate = pos(options.bytesPerSecond, 'bytesPerSecond')
  const horizon =
    options.horizonNs === undefined ? DEFAULT_HORIZON_NS : pos(options.horizonNs, 'horizonNs')
  let tLast = BigInt(options.tLast ?? 0)
  let drops = 0
  const packets: EdtModelPacket[] = trace.map((p, i) => {
    const now = BigInt(p.arrivalNs)
    const len = checkLen(p.len, i)
    const ts = p.tstampNs === undefined ? 0n : BigInt(p.tstampNs)
    const t = ts > now ? ts : now
    const tNext = tLast + (BigInt(len) * NS) / rate
    if (tNext <= t) {
      tLast = t
      return { arrivalNs: now, len, verdict: 'send', departureNs: t, delayNs: t - now }
    }
    if (tNext - now > horizon) {
      drops++
      return { arrivalNs: now, len, verdict: 'drop', departureNs: null, delayNs: null }
    }
    tLast = tNext
    return { arrivalNs: now, len, verdict: 'delay', departureNs: tNext, delayNs: tNext - now }
  })
  return {
    kind: 'model',
    model: 'edt',
    bytesPerSecond: rate,
    horizonNs: horizon,
    packets,
    tLast,
    drops,
  }
}

/** What the token-bucket model decided for one packet. */
export interface TokenBucketModelPacket {
  arrivalNs: bigint
  len: number
  verdict: 'pass' | 'drop'
  /** Tokens (bytes) left in the bucket right after this packet. */
  tokensAfter: bigint
}

/** Output of {@link tokenBucketModel}; `kind: 'model'` marks it as computed, not measured. */
export interface TokenBucketModelResult {
  kind: 'model'
  model: 'token-bucket'
  bytesPerSecond: bigint
  burstNs: bigint
  /** Bucket depth in bytes: burstNs · rate / 1e9. */
  burstBytes: bigint
  packets: TokenBucketModelPacket[]
  /** `t_tat` after the trace (the map's state). */
  tTat: bigint
  passedBytes: bigint
  drops: number
  droppedBytes: bigint
}

/** Options of {@link tokenBucketModel}. */
export interface TokenBucketModelOptions {
  bytesPerSecond: bigint | number
  /** Bucket depth in ns of traffic at the rate; default 1 s (a burst of one second). */
  burstNs?: bigint | number
  /** Initial `t_tat` (default 0n: a full bucket). */
  tTat?: bigint | number
}

/**
 * MODEL of `mb_tb_police()`: which packets of a trace a token bucket (rate, depth of `burstNs`
 * at that rate) lets through. Same arithmetic as lib/token_bucket.h (GCRA form).
 *
 * @example
 * tokenBucketModel(Array(3).fill({ arrivalNs: 0, len: 600 }), { bytesPerSecond: 1000 })
 *   .packets.map((p) => p.verdict) // ['pass', 'drop', 'drop'] — model output
 */
export function tokenBucketModel(
  trace: readonly TracePacket[],
  options: TokenBucketModelOptions,
): TokenBucketModelResult {
  const rate = pos(options.bytesPerSecond, 'bytesPerSecond')
  const depth = options.burstNs === undefined ? DEFAULT_BURST_NS : pos(options.burstNs, 'burstNs')
  let tat = BigInt(options.tTat ?? 0)
  let drops = 0
  let passedBytes = 0n
  let droppedBytes = 0n
  const packets = trace.map((p, i): TokenBucketModelPacket => {
    const now = BigInt(p.arrivalNs)
    const len = checkLen(p.len, i)
    const cost = (BigInt(len) * NS + rate - 1n) / rate
    const floor = now > depth ? now - depth : 0n
    const t = tat < floor ? floor : tat
    let verdict: 'pass' | 'drop' = 'drop'
    if (t + cost <= now) {
      tat = t + cost
      verdict = 'pass'
      passedBytes += BigInt(len)
    } else {
      drops++
      droppedBytes += BigInt(len)
    }
    const credit = now - (tat < floor ? floor : tat)
    const tokensAfter = credit > 0n ? (credit * rate) / NS : 0n
    return { arrivalNs: now, len, verdict, tokensAfter }
  })
  return {
    kind: 'model',
    model: 'token-bucket',
    bytesPerSecond: rate,
    burstNs: depth,
    burstBytes: (depth * rate) / NS,
    packets,
    tTat: tat,
    passedBytes,
    drops,
    droppedBytes,
  }
}

function pos(v: bigint | number, field: string): bigint {
  if (
    (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) ||
    (typeof v === 'bigint' && v > 0n)
  )
    return BigInt(v)
  throw new BandwidthError(
    'INVALID_OPTION',
    `${field}: expected a positive integer, got ${String(v)}`,
    {
      field,
      value: v,
    },
  )
}

function checkLen(len: number, i: number): number {
  if (!Number.isSafeInteger(len) || len <= 0 || len > 0xffffffff) {
    throw new BandwidthError(
      'INVALID_OPTION',
      `trace[${i}].len: expected a positive packet length, got ${String(len)}`,
      { field: `trace[${i}].len`, value: len },
    )
  }
  return len
}
