import { EventEmitter } from 'node:events'
import { loadAddon, type NativeRingBufferHandle } from './_addon'
import { closed, fromNative, invalid } from './errors'
import type { BpfMap } from './map'

/** One perf event array sample and the CPU that wrote it. */
export interface PerfSample {
  cpu: number
  /** The raw sample (perf pads it to a multiple of 8 bytes, minus its 4-byte header). */
  data: Buffer
}

/**
 * Reads a BPF perf event array (`BPF_MAP_TYPE_PERF_EVENT_ARRAY`, one ring per CPU) on the event
 * loop, like {@link RingBuffer}: libuv polls perf_buffer's epoll fd and each wake-up delivers the
 * samples of every CPU. Samples lost in the kernel are counted in `lost` and emitted as
 * `'lost'`. Prefer ring buffers (ordered, shared, no per-CPU memory) where the kernel has them.
 *
 * @example
 * const pb = new PerfBuffer(obj.map('perf_events'), ({ cpu, data }) => console.log(cpu, data))
 */
export class PerfBuffer extends EventEmitter {
  #native: NativeRingBufferHandle | undefined
  // The map (and through it its object) stays reachable while this reads it.
  readonly #map: BpfMap
  readonly #callback: ((sample: PerfSample) => void) | undefined
  /** Samples delivered so far. */
  delivered = 0
  /** Samples the kernel reported lost so far. */
  lost = 0

  /** `pageCount`: pages per CPU ring, a power of two (default 64). */
  constructor(
    map: BpfMap,
    callback?: (sample: PerfSample) => void,
    options: { pageCount?: number } = {},
  ) {
    super()
    this.#map = map
    if (map.info.type !== 'perf_event_array')
      throw invalid(`PerfBuffer map '${map.name}'`, 'a perf_event_array map', map.info.type)
    const pages = options.pageCount ?? 64
    if (!Number.isInteger(pages) || pages < 1 || (pages & (pages - 1)) !== 0)
      throw invalid('PerfBuffer pageCount', 'a power of two', pages)
    this.#callback = callback
    const addon = loadAddon()
    try {
      this.#native = new addon.NativePerfBuffer(map.fd, pages, (err, batch, offsets, lost) =>
        this.#onBatch(err, batch, offsets, lost),
      )
    } catch (error) {
      throw fromNative(error, `PerfBuffer on map '${map.name}'`)
    }
    this.#native.start()
  }

  #onBatch(err: Error | null, batch?: Buffer, offsets?: Uint32Array, lost?: number): void {
    if (err) {
      this.emit('error', fromNative(err))
      return
    }
    if (lost) {
      this.lost += lost
      this.emit('lost', lost)
    }
    if (!batch || !offsets) return
    const n = offsets.length / 3
    for (let i = 0; i < n; i++) {
      const off = offsets[3 * i]!
      const sample = {
        cpu: offsets[3 * i + 2]!,
        data: batch.subarray(off, off + offsets[3 * i + 1]!),
      }
      this.delivered++
      this.#callback?.(sample)
      if (this.listenerCount('data') > 0) this.emit('data', sample)
    }
  }

  /** Stops polling (samples stay in the per-CPU rings until resume or overwrite). */
  pause(): void {
    this.#native?.stop()
  }

  resume(): void {
    this.#native?.start()
  }

  /** Reads every CPU ring now; returns the number of samples delivered. */
  consume(): number {
    if (!this.#native) throw closed('perf buffer')
    return this.#native.consume()
  }

  /** The map this reads. */
  get map(): BpfMap {
    return this.#map
  }

  close(): void {
    if (!this.#native) return
    this.#native.close()
    this.#native = undefined
    this.emit('close')
  }

  /** Lets the process exit while this is still polling (like `timer.unref()`). */
  unref(): this {
    this.#native?.setRef(false)
    return this
  }

  /** Undoes {@link PerfBuffer.unref}: polling keeps the process alive (the default). */
  ref(): this {
    this.#native?.setRef(true)
    return this
  }

  [Symbol.dispose](): void {
    this.close()
  }
}
