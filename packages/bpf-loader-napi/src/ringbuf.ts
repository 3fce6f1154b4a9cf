import { EventEmitter } from 'node:events'
import { loadAddon, type NativeRingBufferHandle } from './_addon'
import { closed, fromNative, invalid } from './errors'
import type { BpfMap } from './map'

/** Options of {@link RingBuffer}. */
export interface RingBufferOptions {
  /** Records per delivered batch at most. Default 4096. */
  maxBatch?: number
  /** Async iterator: stop polling the kernel when this many records wait. Default 65536. */
  highWaterMark?: number
  /** Async iterator: resume polling below this many. Default highWaterMark / 4. */
  lowWaterMark?: number
}

/**
 * Consumes a BPF ring buffer map on the event loop without blocking it: libuv polls the ring's
 * epoll fd, and each wake-up delivers a batch of records.
 *
 * Three ways to read: the callback (per record), events (`'data'` per record, `'batch'` per
 * batch, `'error'`), or `for await (const record of rb)` with back-pressure: when the consumer
 * falls behind by `highWaterMark` records, polling pauses and the kernel-side producer sees a
 * full ring (its reserve fails and it counts a loss) instead of this process buffering
 * without bound. Records are views into one Buffer per batch; copy one to keep it past the batch.
 *
 * @example
 * const rb = new RingBuffer(obj.map('events'), (record) => console.log(record.readUInt32LE(0)))
 * // ... later
 * rb.close()
 */
export class RingBuffer extends EventEmitter {
  #native: NativeRingBufferHandle | undefined
  // The map (and through it its object) stays reachable while this reads it.
  readonly #map: BpfMap
  readonly #callback: ((record: Buffer) => void) | undefined
  readonly #queue: Buffer[] = []
  #queueHead = 0
  readonly #waiters: Array<(r: IteratorResult<Buffer>) => void> = []
  readonly #high: number
  readonly #low: number
  #paused = false
  #userPaused = false
  #iterating = false
  /** Records delivered so far. */
  delivered = 0
  /** How many times back-pressure paused polling (the iterator fell behind by highWaterMark). */
  backPressurePauses = 0

  constructor(map: BpfMap, callback?: (record: Buffer) => void, options: RingBufferOptions = {}) {
    super()
    this.#map = map
    if (map.info.type !== 'ringbuf')
      throw invalid(`RingBuffer map '${map.name}'`, 'a ringbuf map', map.info.type)
    if (callback !== undefined && typeof callback !== 'function')
      throw invalid('RingBuffer callback', 'a function', callback)
    this.#callback = callback
    this.#high = options.highWaterMark ?? 65536
    this.#low = options.lowWaterMark ?? Math.floor(this.#high / 4)
    const maxBatch = options.maxBatch ?? 4096
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw invalid('RingBuffer maxBatch', 'a positive integer', maxBatch)
    const addon = loadAddon()
    try {
      this.#native = new addon.NativeRingBuffer(
        map.fd,
        (err, batch, offsets) => this.#onBatch(err, batch, offsets),
        maxBatch,
      )
    } catch (error) {
      throw fromNative(error, `RingBuffer on map '${map.name}'`)
    }
    this.#native.start()
  }

  #onBatch(err: Error | null, batch?: Buffer, offsets?: Uint32Array): void {
    if (err) {
      const e = fromNative(err)
      if (this.listenerCount('error') > 0) this.emit('error', e)
      else this.#failIterators(e)
      return
    }
    if (!batch || !offsets) return
    const n = offsets.length / 2
    const records: Buffer[] = new Array(n)
    for (let i = 0; i < n; i++) {
      const off = offsets[2 * i]!
      records[i] = batch.subarray(off, off + offsets[2 * i + 1]!)
    }
    this.delivered += n
    if (this.#callback) {
      try {
        for (const r of records) this.#callback(r)
      } catch (error) {
        // A throwing callback is the caller's bug: report it as 'error' when someone listens,
        // otherwise let it surface as an uncaught exception (like an EventEmitter listener).
        if (this.listenerCount('error') > 0) this.emit('error', error)
        else throw error
      }
    }
    if (this.listenerCount('batch') > 0) this.emit('batch', records)
    if (this.listenerCount('data') > 0) for (const r of records) this.emit('data', r)
    if (this.#iterating) {
      for (const r of records) {
        const w = this.#waiters.shift()
        if (w) w({ value: r, done: false })
        else this.#queue.push(r)
      }
      if (this.#queue.length - this.#queueHead >= this.#high) this.#pauseNative()
    }
  }

  #pauseNative(): void {
    if (!this.#paused && this.#native) {
      this.#native.stop()
      this.#paused = true
      this.backPressurePauses++
    }
  }

  /** True while polling is paused (by pause() or by back-pressure). */
  get paused(): boolean {
    return this.#paused
  }

  #resumeNative(): void {
    if (this.#paused && !this.#userPaused && this.#native) {
      this.#native.start()
      this.#paused = false
    }
  }

  /** Stops polling the kernel (records stay in the ring until resume). */
  pause(): void {
    this.#userPaused = true
    this.#pauseNative()
  }

  /** Resumes polling after {@link RingBuffer.pause}. */
  resume(): void {
    this.#userPaused = false
    this.#resumeNative()
  }

  /** Drains the ring synchronously now; returns the number of records delivered. */
  consume(): number {
    if (!this.#native) throw closed('ring buffer')
    return this.#native.consume()
  }

  #failIterators(error: unknown): void {
    while (this.#waiters.length > 0) this.#waiters.shift()!({ value: undefined, done: true })
    this.emit('iterator-error', error)
  }

  /** Reads records one at a time with back-pressure (see the class doc). */
  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    this.#iterating = true
    const next = (): Promise<IteratorResult<Buffer>> => {
      if (this.#queueHead < this.#queue.length) {
        const value = this.#queue[this.#queueHead++]!
        if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
          this.#queue.splice(0, this.#queueHead)
          this.#queueHead = 0
        }
        if (this.#queue.length - this.#queueHead <= this.#low) this.#resumeNative()
        return Promise.resolve({ value, done: false })
      }
      if (!this.#native) return Promise.resolve({ value: undefined, done: true })
      this.#resumeNative()
      return new Promise((resolve) => this.#waiters.push(resolve))
    }
    const it: AsyncIterableIterator<Buffer> = {
      next,
      return: async () => {
        this.#iterating = false
        return { value: undefined, done: true }
      },
      [Symbol.asyncIterator]: () => it,
    }
    return it
  }

  /** Stops polling and frees the ring; pending iterators end. */
  /** The map this reads. */
  get map(): BpfMap {
    return this.#map
  }

  close(): void {
    if (!this.#native) return
    this.#native.close()
    this.#native = undefined
    while (this.#waiters.length > 0) this.#waiters.shift()!({ value: undefined, done: true })
    this.emit('close')
  }

  /** Lets the process exit while this is still polling (like `timer.unref()`). */
  unref(): this {
    this.#native?.setRef(false)
    return this
  }

  /** Undoes {@link RingBuffer.unref}: polling keeps the process alive (the default). */
  ref(): this {
    this.#native?.setRef(true)
    return this
  }

  [Symbol.dispose](): void {
    this.close()
  }
}
