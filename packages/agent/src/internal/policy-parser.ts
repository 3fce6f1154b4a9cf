import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { type PolicyDocument, revivePolicyDocuments } from '@membrane/policy'
import { AgentError, type AgentErrorCode } from '../errors'

/** A job for the policy worker. */
export interface ParseJob {
  id: number
  text: string
  source: string
}

/** Part of the policy worker's answer: the next objects and their (cloned) documents. */
export interface ParseBatch {
  id: number
  objects: unknown[]
  docs: unknown[]
}

/** The end of the policy worker's answer to one job. */
export type ParseResult =
  | { id: number; ok: true }
  | { id: number; ok: false; code: AgentErrorCode; message: string; field: string | undefined }

/** Limits of {@link PolicyParser}. */
export interface PolicyParserLimits {
  /** Longest a parse may take before the worker is terminated. Default 10 000 ms. */
  timeoutMs?: number
  /** Old-generation heap of the worker; a parse that needs more ends it. Default 512 MB. */
  maxMemoryMb?: number
}

interface Pending {
  job: ParseJob
  objects: unknown[]
  docs: PolicyDocument[]
  resolve: (r: { objects: unknown[]; docs: PolicyDocument[] }) => void
  reject: (e: AgentError) => void
}

// This module's own file: dist/*.js (ESM), dist/*.cjs, or src/internal/*.ts in the workspace.
const here = typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url)

/**
 * Parses and validates policy text in a worker thread, one job at a time, so a large or hostile
 * document never blocks the API (or anything else on the agent's event loop). A job that runs
 * past `timeoutMs` or past the worker's heap limit terminates the worker (a fresh one takes the
 * next job) and fails with TOO_LARGE. The worker's documents arrive in batches and only get their
 * class prototypes back here (revivePolicyDocuments), so no parsing happens on this thread.
 */
export class PolicyParser {
  readonly #limits: Required<PolicyParserLimits>
  #worker: Worker | undefined
  #queue: Pending[] = []
  #current: Pending | undefined
  #timer: NodeJS.Timeout | undefined
  /** The current worker said it is ready (its boot does not count against a job's time). */
  #ready = false
  #nextId = 1
  #closed = false

  constructor(limits: PolicyParserLimits = {}) {
    this.#limits = { timeoutMs: 10_000, maxMemoryMb: 512, ...limits }
  }

  /** Start the worker now (it takes a moment), so the first import does not wait for it. */
  warm(): void {
    this.#ensureWorker()
  }

  /** Parse `text` (named `source` in errors) into plain objects and policy documents. */
  parse(text: string, source: string): Promise<{ objects: unknown[]; docs: PolicyDocument[] }> {
    if (this.#closed) return Promise.reject(new AgentError('UNAVAILABLE', 'the agent is stopping'))
    return new Promise((resolve, reject) => {
      const job = { id: this.#nextId++, text, source }
      this.#queue.push({ job, objects: [], docs: [], resolve, reject })
      this.#next()
    })
  }

  /** Stop the worker; queued jobs fail with UNAVAILABLE. */
  async close(): Promise<void> {
    this.#closed = true
    const unavailable = new AgentError('UNAVAILABLE', 'the agent is stopping')
    for (const p of this.#queue.splice(0)) p.reject(unavailable)
    this.#finish()?.reject(unavailable)
    const w = this.#worker
    this.#worker = undefined
    await w?.terminate()
  }

  #next(): void {
    if (this.#current || this.#closed) return
    const p = this.#queue.shift()
    if (!p) return
    this.#current = p
    this.#ensureWorker().postMessage(p.job)
    if (this.#ready) this.#startTimer()
  }

  #startTimer(): void {
    const p = this.#current
    if (!p || this.#timer) return
    this.#timer = setTimeout(() => {
      this.#kill(
        new AgentError(
          'TOO_LARGE',
          `${p.job.source}: parsing took longer than ${this.#limits.timeoutMs} ms; split the text into smaller imports`,
          { field: p.job.source },
        ),
      )
    }, this.#limits.timeoutMs)
  }

  #finish(): Pending | undefined {
    const p = this.#current
    this.#current = undefined
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    return p
  }

  /** End the worker (a fresh one serves the next job) and fail the current job. */
  #kill(error: AgentError): void {
    const w = this.#worker
    this.#worker = undefined
    void w?.terminate()
    this.#finish()?.reject(error)
    this.#next()
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker
    const worker = spawnWorker(this.#limits.maxMemoryMb)
    this.#ready = false
    worker.unref()
    worker.on('message', (m: ParseResult | ParseBatch | { ready: true }) => {
      if ('ready' in m) {
        if (worker === this.#worker) {
          this.#ready = true
          this.#startTimer()
        }
        return
      }
      const p = this.#current
      if (worker !== this.#worker || m.id !== p?.job.id) return
      if ('docs' in m) {
        p.objects.push(...m.objects)
        p.docs.push(...revivePolicyDocuments(m.docs))
        // Let the event loop serve others before the next batch is decoded.
        setImmediate(() => {
          if (worker === this.#worker && this.#current === p) worker.postMessage({ ack: m.id })
        })
        return
      }
      this.#finish()
      if (m.ok) p.resolve({ objects: p.objects, docs: p.docs })
      else p.reject(new AgentError(m.code, m.message, m.field ? { field: m.field } : {}))
      this.#next()
    })
    worker.on('error', (error: Error & { code?: string }) => {
      if (worker !== this.#worker) return
      const source = this.#current?.job.source ?? 'policy'
      this.#kill(
        error.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new AgentError(
              'TOO_LARGE',
              `${source}: parsing needed more than ${this.#limits.maxMemoryMb} MB; split the text into smaller imports`,
              { field: source },
            )
          : new AgentError('INTERNAL', `policy worker failed: ${error.message}`, { cause: error }),
      )
    })
    worker.on('exit', () => {
      if (worker !== this.#worker) return
      this.#kill(new AgentError('INTERNAL', 'the policy worker exited'))
    })
    this.#worker = worker
    return worker
  }
}

/**
 * The worker: the built `policy-worker.js` next to this bundle, or in the workspace the
 * TypeScript source run through tsx (as bin/membrane.mjs runs the CLI).
 */
function spawnWorker(maxMemoryMb: number): Worker {
  const resourceLimits = { maxOldGenerationSizeMb: maxMemoryMb, stackSizeMb: 4 }
  const source = join(dirname(here), 'policy-worker.ts')
  if (here.endsWith('.ts') && existsSync(source)) {
    const tsxRoot = dirname(createRequire(here).resolve('tsx/package.json'))
    const api = pathToFileURL(join(tsxRoot, 'dist', 'esm', 'api', 'index.mjs')).href
    const code = `import(${JSON.stringify(api)}).then(({ tsImport }) => tsImport(${JSON.stringify(source)}, ${JSON.stringify(pathToFileURL(here).href)}))`
    return new Worker(code, {
      eval: true,
      execArgv: ['--conditions=@membrane/source'],
      resourceLimits,
    })
  }
  return new Worker(join(dirname(here), 'policy-worker.js'), { resourceLimits })
}
