/**
 * Benchmark reporting. A bench file (`packages/<pkg>/bench/*.ts`) prints one JSON line per
 * figure on stdout; `npm run bench` collects them. Anything else a bench wants to say goes to
 * stderr.
 */

/** One measured figure. Extra fields describe the case (sizes, peer, target). */
export interface Figure {
  name: string
  value: number
  unit: string
  [extra: string]: unknown
}

/** Print one figure as a JSON line. */
export function reportFigure(figure: Figure): void {
  process.stdout.write(`${JSON.stringify(figure)}\n`)
}

/** The p-th percentile (0..100) of `values` by nearest rank; NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] as number
}

/** Median of `values`. */
export function median(values: readonly number[]): number {
  return percentile(values, 50)
}

/**
 * Time `fn` over `samples` runs (after `warmup` runs) and return each run's duration in ms.
 */
export async function sample(
  fn: () => unknown,
  options: { samples?: number; warmup?: number } = {},
): Promise<number[]> {
  const { samples = 20, warmup = 3 } = options
  for (let i = 0; i < warmup; i++) await fn()
  const out: number[] = []
  for (let i = 0; i < samples; i++) {
    const t0 = process.hrtime.bigint()
    await fn()
    out.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  return out
}

/**
 * Run `op` repeatedly for about `durationMs` and return operations per second. `op` may do a
 * batch of `opsPerCall` operations per call.
 */
export async function opsPerSecond(
  op: () => unknown,
  options: { durationMs?: number; opsPerCall?: number } = {},
): Promise<number> {
  const { durationMs = 1000, opsPerCall = 1 } = options
  for (let i = 0; i < 100; i++) await op()
  let calls = 0
  const t0 = process.hrtime.bigint()
  const limit = BigInt(durationMs) * 1_000_000n
  let elapsed = 0n
  do {
    for (let i = 0; i < 64; i++) await op()
    calls += 64
    elapsed = process.hrtime.bigint() - t0
  } while (elapsed < limit)
  return (calls * opsPerCall) / (Number(elapsed) / 1e9)
}
