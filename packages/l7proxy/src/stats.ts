/**
 * Counters of a proxy. Plain numbers, read with `snapshot()`.
 */

/** A set of named counters. */
export class Counters<K extends string> {
  readonly #values: Record<string, number> = {}

  constructor(names: readonly K[]) {
    for (const n of names) this.#values[n] = 0
  }

  inc(name: K, by = 1): void {
    this.#values[name] = (this.#values[name] ?? 0) + by
  }

  dec(name: K, by = 1): void {
    this.#values[name] = (this.#values[name] ?? 0) - by
  }

  get(name: K): number {
    return this.#values[name] ?? 0
  }

  /** A copy of every counter. */
  snapshot(): Record<K, number> {
    return { ...this.#values } as Record<K, number>
  }
}
