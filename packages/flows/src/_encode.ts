/**
 * A hand-written protobuf encoder for Flow and GetFlowsResponse (the hot path of GetFlows). It
 * writes the same fields as the protobufjs codec in proto.ts (checked by a property test that
 * decodes its output with protobufjs), without building an op list per message.
 */
import { slotOf } from './_shared'
import type { Endpoint, Flow, FlowsResponse, Layer7, Policy, TCPFlags, Timestamp } from './types'

let buf = Buffer.allocUnsafe(64 * 1024)
let pos = 0

function ensure(n: number): void {
  if (pos + n <= buf.length) return
  const next = Buffer.allocUnsafe(Math.max(buf.length * 2, pos + n))
  buf.copy(next, 0, 0, pos)
  buf = next
}

function varint(v: number): void {
  ensure(10)
  while (v > 0x7f) {
    buf[pos++] = (v % 128) | 0x80
    v = Math.floor(v / 128)
  }
  buf[pos++] = v
}

function varintBig(v: bigint): void {
  ensure(10)
  while (v > 0x7fn) {
    buf[pos++] = Number(v & 0x7fn) | 0x80
    v >>= 7n
  }
  buf[pos++] = Number(v)
}

const key = (field: number, wire: number) => varint(field * 8 + wire)

function uint(field: number, v: number | undefined): void {
  if (!v) return
  key(field, 0)
  varint(v)
}

function int32(field: number, v: number | undefined): void {
  if (!v) return
  key(field, 0)
  if (v < 0) varintBig(BigInt.asUintN(64, BigInt(v)))
  else varint(v)
}

function bool(field: number, v: boolean | undefined): void {
  if (!v) return
  key(field, 0)
  ensure(1)
  buf[pos++] = 1
}

/** Start a length-delimited field: returns where its content starts. */
function begin(field: number): number {
  key(field, 2)
  ensure(1)
  pos++ // one byte reserved for the length; fixed up in end()
  return pos
}

function end(start: number): void {
  const len = pos - start
  if (len < 128) {
    buf[start - 1] = len
    return
  }
  let extra = 0
  for (let l = len >> 7; l > 0; l = Math.floor(l / 128)) extra++
  ensure(extra)
  buf.copy(buf, start + extra, start, pos)
  let p = start - 1
  let v = len
  while (v > 0x7f) {
    buf[p++] = (v % 128) | 0x80
    v = Math.floor(v / 128)
  }
  buf[p] = v
  pos += extra
}

function str(field: number, s: string | undefined): void {
  if (!s) return
  const start = begin(field)
  ensure(s.length * 3)
  pos += buf.write(s, pos, 'utf8')
  end(start)
}

// UTF-8 bytes of strings that repeat from flow to flow (addresses, MACs, node and interface
// names): a map lookup and a copy instead of a UTF-8 encode. Bounded.
const utf8Memo = new Map<string, Uint8Array>()

function strc(field: number, s: string | undefined): void {
  if (!s) return
  let b = utf8Memo.get(s)
  if (b === undefined) {
    b = Buffer.from(s, 'utf8')
    if (utf8Memo.size >= 1 << 14) utf8Memo.clear()
    utf8Memo.set(s, b)
  }
  key(field, 2)
  varint(b.length)
  ensure(b.length)
  buf.set(b, pos)
  pos += b.length
}

function strs(field: number, list: readonly string[] | undefined): void {
  if (!list) return
  for (const s of list) {
    // repeated strings keep empty elements
    const start = begin(field)
    ensure(s.length * 3)
    pos += buf.write(s, pos, 'utf8')
    end(start)
  }
}

function timestamp(field: number, t: Timestamp | undefined): void {
  if (!t) return
  const s = begin(field)
  if (t.seconds) {
    key(1, 0)
    if (t.seconds < 0) varintBig(BigInt.asUintN(64, BigInt(t.seconds)))
    else varint(t.seconds)
  }
  int32(2, t.nanos)
  end(s)
}

function copyBytes(field: number, b: Uint8Array): void {
  key(field, 2)
  varint(b.length)
  ensure(b.length)
  buf.set(b, pos)
  pos += b.length
}

/** Encode a sub-message, reusing the bytes kept in a shared part's slot. */
function shareable<T extends object>(field: number, obj: T, write: (o: T) => void): void {
  const slot = slotOf(obj)
  if (slot?.bytes) {
    copyBytes(field, slot.bytes)
    return
  }
  const s = begin(field)
  write(obj)
  const len = pos - s
  end(s)
  if (slot) slot.bytes = Buffer.from(buf.subarray(pos - len, pos))
}

function endpoint(field: number, e: Endpoint | undefined): void {
  if (!e) return
  const slot = slotOf(e)
  if (slot?.bytes) {
    copyBytes(field, slot.bytes)
    return
  }
  const s = begin(field)
  uint(1, e.ID)
  uint(2, e.identity)
  str(3, e.namespace)
  strs(4, e.labels)
  str(5, e.podName)
  if (e.workloads) {
    for (const w of e.workloads) {
      const ws = begin(6)
      str(1, w.name)
      str(2, w.kind)
      end(ws)
    }
  }
  str(7, e.clusterName)
  const len = pos - s
  end(s) // may move the content right to make room for a longer length prefix
  if (slot) slot.bytes = Buffer.from(buf.subarray(pos - len, pos))
}

function writePolicy(p: Policy): void {
  str(1, p.name)
  str(2, p.namespace)
  strs(3, p.labels)
  uint(4, p.revision)
  str(5, p.kind)
}

/** A repeated Policy field (each policy a shared part, encoded once). */
function policies(field: number, list: readonly Policy[] | undefined): void {
  if (!list) return
  for (const p of list) shareable(field, p, writePolicy)
}

const FLAG_FIELDS = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'] as const

function tcpFlags(field: number, f: TCPFlags | undefined): void {
  if (!f) return
  const slot = slotOf(f)
  if (slot?.bytes) {
    copyBytes(field, slot.bytes)
    return
  }
  const s = begin(field)
  for (let i = 0; i < FLAG_FIELDS.length; i++) bool(i + 1, f[FLAG_FIELDS[i] as keyof TCPFlags])
  const len = pos - s
  end(s)
  if (slot) slot.bytes = Buffer.from(buf.subarray(pos - len, pos))
}

function ports(
  field: number,
  p: { sourcePort: number; destinationPort: number } | undefined,
  flags?: TCPFlags,
): void {
  if (!p) return
  const s = begin(field)
  uint(1, p.sourcePort)
  uint(2, p.destinationPort)
  tcpFlags(3, flags)
  end(s)
}

function layer7(field: number, l7: Layer7 | undefined): void {
  if (!l7) return
  const s = begin(field)
  uint(1, l7.type)
  uint(2, l7.latencyNs)
  if (l7.dns) {
    const d = l7.dns
    const ds = begin(100)
    str(1, d.query)
    strs(2, d.ips)
    uint(3, d.ttl)
    strs(4, d.cnames)
    str(5, d.observationSource)
    uint(6, d.rcode)
    strs(7, d.qtypes)
    strs(8, d.rrtypes)
    end(ds)
  }
  if (l7.http) {
    const h = l7.http
    const hs = begin(101)
    uint(1, h.code)
    str(2, h.method)
    str(3, h.url)
    str(4, h.protocol)
    if (h.headers) {
      for (const kv of h.headers) {
        const ks = begin(5)
        str(1, kv.key)
        str(2, kv.value)
        end(ks)
      }
    }
    end(hs)
  }
  if (l7.kafka) {
    const k = l7.kafka
    const ks = begin(102)
    int32(1, k.errorCode)
    int32(2, k.apiVersion)
    str(3, k.apiKey)
    int32(4, k.correlationId)
    str(5, k.topic)
    end(ks)
  }
  end(s)
}

function writeFlow(f: Flow): void {
  timestamp(1, f.time)
  uint(2, f.verdict)
  uint(3, f.dropReason)
  if (f.ethernet) {
    const s = begin(4)
    strc(1, f.ethernet.source)
    strc(2, f.ethernet.destination)
    end(s)
  }
  if (f.IP) {
    const s = begin(5)
    strc(1, f.IP.source)
    strc(2, f.IP.destination)
    uint(3, f.IP.ipVersion)
    bool(4, f.IP.encrypted)
    end(s)
  }
  if (f.l4) {
    const s = begin(6)
    const l4 = f.l4
    if (l4.TCP) ports(1, l4.TCP, l4.TCP.flags)
    else if (l4.UDP) ports(2, l4.UDP)
    else if (l4.ICMPv4 || l4.ICMPv6) {
      const icmp = (l4.ICMPv4 ?? l4.ICMPv6) as { type: number; code: number }
      const is = begin(l4.ICMPv4 ? 3 : 4)
      uint(1, icmp.type)
      uint(2, icmp.code)
      end(is)
    } else if (l4.SCTP) ports(5, l4.SCTP)
    end(s)
  }
  endpoint(8, f.source)
  endpoint(9, f.destination)
  uint(10, f.Type)
  strc(11, f.nodeName)
  strs(13, f.sourceNames)
  strs(14, f.destinationNames)
  layer7(15, f.l7)
  if (f.eventType)
    shareable(19, f.eventType, (e) => {
      int32(1, e.type)
      int32(2, e.subType)
    })
  for (const [field, svc] of [
    [20, f.sourceService],
    [21, f.destinationService],
  ] as const) {
    if (!svc) continue
    const s = begin(field)
    str(1, svc.name)
    str(2, svc.namespace)
    end(s)
  }
  uint(22, f.trafficDirection)
  uint(23, f.policyMatchType)
  uint(24, f.traceObservationPoint)
  uint(25, f.dropReasonDesc)
  if (f.isReply) {
    const s = begin(26)
    bool(1, f.isReply.value)
    end(s)
  }
  if (f.interface)
    shareable(28, f.interface, (i) => {
      uint(1, i.index)
      strc(2, i.name)
    })
  uint(29, f.proxyPort)
  uint(31, f.sockXlatePoint)
  if (f.socketCookie && f.socketCookie !== '0') {
    key(32, 0)
    varintBig(BigInt(f.socketCookie))
  }
  str(34, f.uuid)
  strs(37, f.nodeLabels)
  policies(21001, f.egressAllowedBy)
  policies(21002, f.ingressAllowedBy)
  policies(21004, f.egressDeniedBy)
  policies(21005, f.ingressDeniedBy)
  strs(21006, f.policyLog)
}

/** Encode a Flow (flow.Flow) into a new Buffer. */
export function fastEncodeFlow(flow: Flow): Buffer {
  pos = 0
  writeFlow(flow)
  return Buffer.from(buf.subarray(0, pos))
}

/**
 * Encode a GetFlowsResponse as a gRPC length-prefixed message (5-byte header + bytes), in one
 * pass and one allocation.
 */
export function fastEncodeFramedResponse(r: FlowsResponse): Buffer {
  pos = 5
  if (r.flow) {
    const s = begin(1)
    writeFlow(r.flow)
    end(s)
  }
  if (r.lostEvents) {
    const s = begin(3)
    uint(1, r.lostEvents.source)
    uint(2, r.lostEvents.numEventsLost)
    if (r.lostEvents.cpu) {
      const c = begin(3)
      int32(1, r.lostEvents.cpu.value)
      end(c)
    }
    end(s)
  }
  strc(1000, r.nodeName)
  timestamp(1001, r.time)
  buf[0] = 0
  buf.writeUInt32BE(pos - 5, 1)
  return Buffer.from(buf.subarray(0, pos))
}
