/**
 * Protobuf codecs (protobufjs) for our flow.proto / observer.proto, whose field numbers follow
 * Hubble's. The .proto files ship in the package under `proto/` ({@link PROTO_DIR}).
 */
import { isAbsolute, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { fastEncodeFlow } from './_encode'
import { FilterError } from './filter'
import type { Flow, FlowsResponse, LostEvent, Timestamp } from './types'

/** Directory holding `flow/flow.proto` and `observer/observer.proto` (include path for protoc). */
export const PROTO_DIR: string = fileURLToPath(new URL('../proto/', import.meta.url))
/** Absolute paths of the two .proto files. */
export const PROTO_FILES = {
  flow: join(PROTO_DIR, 'flow', 'flow.proto'),
  observer: join(PROTO_DIR, 'observer', 'observer.proto'),
} as const

let cachedRoot: protobuf.Root | undefined

/** The protobufjs Root with flow.* and observer.* (loaded once, camelCase field names). */
export function protoRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot
  const root = new protobuf.Root()
  root.resolvePath = (_origin, target) => {
    if (target.startsWith('google/protobuf/')) return target
    return isAbsolute(target) ? target : join(PROTO_DIR, target)
  }
  root.loadSync([PROTO_FILES.flow, PROTO_FILES.observer], { keepCase: false })
  root.resolveAll()
  cachedRoot = root
  return root
}

function type(name: string): protobuf.Type {
  return protoRoot().lookupType(name)
}

let FlowT: protobuf.Type | undefined
function flowType(): protobuf.Type {
  FlowT ??= type('flow.Flow')
  return FlowT
}

/** Serialize a Flow to protobuf bytes (flow.Flow), with the hand-written hot-path encoder. */
export function encodeFlow(flow: Flow): Uint8Array {
  return fastEncodeFlow(flow)
}

/** Serialize a Flow with protobufjs' reflection encoder (the reference for the fast encoder). */
export function encodeFlowReference(flow: Flow): Uint8Array {
  return flowType()
    .encode(flow as unknown as Record<string, unknown>)
    .finish()
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: Number, defaults: false }

function fixLongs(flow: Record<string, unknown>): void {
  const time = flow.time as { seconds?: string | number } | undefined
  if (time) time.seconds = Number(time.seconds ?? 0)
  const l7 = flow.l7 as { latencyNs?: string | number } | undefined
  if (l7?.latencyNs !== undefined) l7.latencyNs = Number(l7.latencyNs)
  for (const field of POLICY_FIELDS) {
    const list = flow[field] as Array<Record<string, unknown>> | undefined
    if (!list) continue
    for (const p of list) {
      p.name ??= ''
      p.namespace ??= ''
      p.labels ??= []
      p.revision = Number(p.revision ?? 0)
      p.kind ??= ''
    }
  }
}

const POLICY_FIELDS = [
  'egressAllowedBy',
  'ingressAllowedBy',
  'egressDeniedBy',
  'ingressDeniedBy',
] as const

function normalizeFlow(obj: Record<string, unknown>): Flow {
  fixLongs(obj)
  if (obj.verdict === undefined) obj.verdict = 0
  if (obj.Type === undefined) obj.Type = 0
  const time = obj.time as Timestamp | undefined
  if (time && time.nanos === undefined) time.nanos = 0
  // A present BoolValue wrapper with the default value means "known: false".
  const reply = obj.isReply as { value?: boolean } | undefined
  if (reply && reply.value === undefined) reply.value = false
  return obj as unknown as Flow
}

/** Parse protobuf bytes (flow.Flow) into a Flow. */
export function decodeFlow(bytes: Uint8Array): Flow {
  const t = flowType()
  return normalizeFlow(t.toObject(t.decode(bytes), TO_OBJECT))
}

/**
 * Serialize a GetFlowsResponse around already-encoded flow bytes (so a flow is encoded once,
 * whatever the number of readers).
 */
export function encodeFlowsResponse(
  body: { flowBytes: Uint8Array } | { lost: LostEvent },
  nodeName: string,
  time: Timestamp | undefined,
): Buffer {
  const w = protobuf.Writer.create()
  if ('flowBytes' in body) {
    w.uint32((1 << 3) | 2).bytes(body.flowBytes)
  } else {
    w.uint32((3 << 3) | 2).fork()
    if (body.lost.source) w.uint32(1 << 3).int32(body.lost.source)
    if (body.lost.numEventsLost) w.uint32(2 << 3).uint64(body.lost.numEventsLost)
    if (body.lost.cpu)
      w.uint32((3 << 3) | 2)
        .fork()
        .uint32(1 << 3)
        .int32(body.lost.cpu.value)
        .ldelim()
    w.ldelim()
  }
  if (nodeName) w.uint32((1000 << 3) | 2).string(nodeName)
  if (time) {
    w.uint32((1001 << 3) | 2).fork()
    if (time.seconds) w.uint32(1 << 3).int64(time.seconds)
    if (time.nanos) w.uint32(2 << 3).int32(time.nanos)
    w.ldelim()
  }
  return Buffer.from(w.finish())
}

/** Parse a GetFlowsResponse. */
export function decodeFlowsResponse(bytes: Uint8Array): FlowsResponse {
  const t = type('observer.GetFlowsResponse')
  const obj = t.toObject(t.decode(bytes), TO_OBJECT) as Record<string, unknown>
  const out: FlowsResponse = { nodeName: (obj.nodeName as string | undefined) ?? '' }
  if (obj.flow) out.flow = normalizeFlow(obj.flow as Record<string, unknown>)
  if (obj.lostEvents) {
    const l = obj.lostEvents as {
      source?: number
      numEventsLost?: string
      cpu?: { value?: number }
    }
    out.lostEvents = {
      source: (l.source ?? 0) as LostEvent['source'],
      numEventsLost: Number(l.numEventsLost ?? 0),
      ...(l.cpu ? { cpu: { value: l.cpu.value ?? 0 } } : {}),
    }
  }
  if (obj.time) {
    const t2 = obj.time as { seconds?: string; nanos?: number }
    out.time = { seconds: Number(t2.seconds ?? 0), nanos: t2.nanos ?? 0 }
  }
  return out
}

/** Encode any message of our schema by full name (e.g. 'observer.GetFlowsRequest'). */
export function encodeMessage(name: string, value: Record<string, unknown>): Buffer {
  const t = type(name)
  return Buffer.from(t.encode(t.fromObject(value)).finish())
}

/**
 * Decode any message of our schema by full name into a plain object (enums as numbers; 64-bit
 * integers as strings unless `longsAsNumbers`).
 */
export function decodeMessage(
  name: string,
  bytes: Uint8Array,
  longsAsNumbers = false,
): Record<string, unknown> {
  const t = type(name)
  return t.toObject(t.decode(bytes), longsAsNumbers ? { ...TO_OBJECT, longs: Number } : TO_OBJECT)
}

/**
 * Throw when `bytes` (a message of type `name`) carries a field number our schema does not
 * declare, at any depth: protobufjs drops unknown fields, so without this a filter from a newer
 * client would silently match everything. Returns nothing; `path` prefixes the error.
 * @throws FilterError naming where (`whitelist[0]`) and the field number.
 */
export function assertKnownFields(name: string, bytes: Uint8Array, path = ''): void {
  checkFields(type(name), bytes, path)
}

function checkFields(t: protobuf.Type, bytes: Uint8Array, path: string): void {
  const r = protobuf.Reader.create(bytes)
  const counts = new Map<number, number>()
  while (r.pos < r.len) {
    const tag = r.uint32()
    const id = tag >>> 3
    const wire = tag & 7
    const field = t.fieldsById[id]
    if (!field) {
      throw new FilterError(
        path || t.name,
        `unknown ${t.fullName.slice(1)} field number ${id} (sent by a newer client?): refused rather than ignored`,
      )
    }
    field.resolve()
    if (wire === 2 && field.resolvedType instanceof protobuf.Type) {
      const n = counts.get(id) ?? 0
      counts.set(id, n + 1)
      const at = `${path ? `${path}.` : ''}${field.name}${field.repeated ? `[${n}]` : ''}`
      checkFields(field.resolvedType, r.bytes(), at)
    } else r.skipType(wire)
  }
}
