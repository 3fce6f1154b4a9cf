// The policy worker's entry: parses and validates policy text off the agent's event loop
// (see PolicyParser). Answers each job with the objects and documents in batches, one at a time:
// the next is sent when the agent acknowledges the previous, so the agent's thread decodes one
// batch per turn of its event loop (Node decodes all queued messages of a port in one go), then
// `ok`; or with the error the API should answer.
import { parentPort } from 'node:worker_threads'
import { AgentError } from '../errors'
import type { ParseBatch, ParseJob, ParseResult } from './policy-parser'

/** Documents per message. */
const BATCH = 250

import { parsePolicyText } from './policy-text'

/** Batches not yet sent, by job: the next goes when the agent acknowledges the previous one. */
let outbox: ParseBatch[] = []
let finalResult: ParseResult | undefined

function sendNext(): void {
  const batch = outbox.shift()
  if (batch) parentPort?.postMessage(batch)
  else if (finalResult) {
    parentPort?.postMessage(finalResult)
    finalResult = undefined
  }
}

parentPort?.on('message', (msg: ParseJob | { ack: number }) => {
  if ('ack' in msg) return sendNext()
  const job = msg
  try {
    const { objects, docs } = parsePolicyText(job.text, job.source)
    outbox = []
    for (let i = 0; i < objects.length; i += BATCH) {
      outbox.push({
        id: job.id,
        objects: objects.slice(i, i + BATCH),
        docs: docs.slice(i, i + BATCH),
      })
    }
    finalResult = { id: job.id, ok: true }
  } catch (error) {
    const e =
      error instanceof AgentError
        ? error
        : new AgentError('INTERNAL', `${job.source}: ${(error as Error).message}`)
    outbox = []
    finalResult = { id: job.id, ok: false, code: e.code, message: e.message, field: e.field }
  }
  sendNext()
})
parentPort?.postMessage({ ready: true })
