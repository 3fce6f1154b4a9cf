/**
 * DNS wire format (RFC 1035): just what the proxy needs — the header, questions, and the
 * resource records of answers (A, AAAA, CNAME decoded; others kept raw). Names may be
 * compressed; pointers must point backwards, so a malicious packet cannot loop.
 */
import { formatIpv4Bytes, formatIpv6Bytes } from '@membrane/types'
import { WireFormatError } from '../errors'

/** Record types the proxy names. */
export const DnsType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  ANY: 255,
} as const

/** Response codes. */
export const DnsRcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const

const TYPE_NAMES = new Map<number, string>(Object.entries(DnsType).map(([k, v]) => [v, k]))

/** `A`, `AAAA`, ... or `TYPE<n>`. */
export function dnsTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `TYPE${type}`
}

/** One question. `name` is lower-case without the trailing dot (`""` is the root). */
export interface DnsQuestion {
  name: string
  type: number
  class: number
}

/** One resource record. */
export interface DnsRecord {
  name: string
  type: number
  class: number
  ttl: number
  /** A/AAAA: the address; CNAME: the target name; otherwise undefined. */
  data?: string
  /** Raw RDATA. */
  rdata: Uint8Array
}

/** A parsed DNS message. */
export interface DnsMessage {
  id: number
  /** Response (QR) bit. */
  qr: boolean
  opcode: number
  rd: boolean
  rcode: number
  questions: DnsQuestion[]
  answers: DnsRecord[]
  /** Byte offset where the question section ends (for echoing it in a reply). */
  questionEnd: number
}

const MAX_NAME = 255
const MAX_RECORDS = 512

function need(buf: Uint8Array, off: number, n: number, field: string, what: string): void {
  if (off + n > buf.length) throw new WireFormatError('dns', field, off, what)
}

function readName(buf: Uint8Array, start: number, field: string): { name: string; end: number } {
  const labels: string[] = []
  let off = start
  let end = -1
  let total = 0
  let limit = start // a pointer must point before the smallest offset seen so far
  for (;;) {
    need(buf, off, 1, field, 'a label length')
    const len = buf[off] as number
    if (len === 0) {
      if (end < 0) end = off + 1
      break
    }
    const kind = len & 0xc0
    if (kind === 0xc0) {
      need(buf, off, 2, field, 'a compression pointer')
      const ptr = ((len & 0x3f) << 8) | (buf[off + 1] as number)
      if (ptr >= limit) throw new WireFormatError('dns', field, off, 'a pointer to an earlier name')
      if (end < 0) end = off + 2
      limit = ptr
      off = ptr
      continue
    }
    if (kind !== 0) throw new WireFormatError('dns', field, off, 'a label length below 64')
    need(buf, off + 1, len, field, `a label of ${len} bytes`)
    total += len + 1
    if (total > MAX_NAME)
      throw new WireFormatError('dns', field, off, 'a name of at most 255 bytes')
    let label = ''
    for (let i = off + 1; i <= off + len; i++) label += String.fromCharCode(buf[i] as number)
    labels.push(label.toLowerCase())
    off += len + 1
  }
  return { name: labels.join('.'), end }
}

function readU16(buf: Uint8Array, off: number): number {
  return ((buf[off] as number) << 8) | (buf[off + 1] as number)
}

function readU32(buf: Uint8Array, off: number): number {
  return (buf[off] as number) * 0x1000000 + ((buf[off + 1] as number) << 16) + readU16(buf, off + 2)
}

/**
 * Parse a DNS message. Reads the header, every question and the answer section (authority and
 * additional records are not needed and not read).
 * @throws WireFormatError naming the field and byte offset.
 */
export function parseDnsMessage(buf: Uint8Array): DnsMessage {
  need(buf, 0, 12, 'header', 'a 12-byte header')
  const flags = readU16(buf, 2)
  const qd = readU16(buf, 4)
  const an = readU16(buf, 6)
  if (qd + an > MAX_RECORDS) throw new WireFormatError('dns', 'header', 4, 'at most 512 records')
  let off = 12
  const questions: DnsQuestion[] = []
  for (let i = 0; i < qd; i++) {
    const field = `question[${i}]`
    const n = readName(buf, off, `${field}.name`)
    need(buf, n.end, 4, `${field}.type`, 'type and class')
    questions.push({ name: n.name, type: readU16(buf, n.end), class: readU16(buf, n.end + 2) })
    off = n.end + 4
  }
  const questionEnd = off
  const answers: DnsRecord[] = []
  for (let i = 0; i < an; i++) {
    const field = `answer[${i}]`
    const n = readName(buf, off, `${field}.name`)
    need(buf, n.end, 10, field, 'type, class, ttl and rdlength')
    const type = readU16(buf, n.end)
    const cls = readU16(buf, n.end + 2)
    const ttl = readU32(buf, n.end + 4)
    const rdlen = readU16(buf, n.end + 8)
    const rstart = n.end + 10
    need(buf, rstart, rdlen, `${field}.rdata`, `${rdlen} bytes of rdata`)
    const rdata = buf.subarray(rstart, rstart + rdlen)
    const rec: DnsRecord = { name: n.name, type, class: cls, ttl, rdata }
    if (type === DnsType.A) {
      if (rdlen !== 4) throw new WireFormatError('dns', `${field}.rdata`, rstart, '4 bytes (A)')
      rec.data = formatIpv4Bytes(rdata)
    } else if (type === DnsType.AAAA) {
      if (rdlen !== 16)
        throw new WireFormatError('dns', `${field}.rdata`, rstart, '16 bytes (AAAA)')
      rec.data = formatIpv6Bytes(rdata)
    } else if (type === DnsType.CNAME) {
      const t = readName(buf, rstart, `${field}.rdata`)
      if (t.end > rstart + rdlen)
        throw new WireFormatError('dns', `${field}.rdata`, rstart, 'a name inside rdlength')
      rec.data = t.name
    }
    answers.push(rec)
    off = rstart + rdlen
  }
  return {
    id: readU16(buf, 0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    rd: (flags & 0x0100) !== 0,
    rcode: flags & 0xf,
    questions,
    answers,
    questionEnd,
  }
}

/**
 * A reply to `query` with `rcode` and no records: the query's header (id, opcode, RD) with QR
 * and RA set, and its question section echoed.
 */
export function buildDnsError(query: Uint8Array, msg: DnsMessage, rcode: number): Buffer {
  const out = Buffer.alloc(msg.questionEnd)
  out.set(query.subarray(0, msg.questionEnd))
  const flags = 0x8000 | (msg.opcode << 11) | (msg.rd ? 0x0100 : 0) | 0x0080 | (rcode & 0xf)
  out.writeUInt16BE(flags, 2)
  out.writeUInt16BE(msg.questions.length, 4)
  out.writeUInt16BE(0, 6)
  out.writeUInt16BE(0, 8)
  out.writeUInt16BE(0, 10)
  return out
}

/** Encode a query (tests and benchmarks): one question, RD set. */
export function buildDnsQuery(id: number, name: string, type: number = DnsType.A): Buffer {
  const labels = name
    .replace(/\.$/, '')
    .split('.')
    .filter((l) => l.length > 0)
  const parts: Buffer[] = [Buffer.alloc(12)]
  const header = parts[0] as Buffer
  header.writeUInt16BE(id & 0xffff, 0)
  header.writeUInt16BE(0x0100, 2)
  header.writeUInt16BE(1, 4)
  for (const l of labels) {
    const b = Buffer.from(l, 'latin1')
    parts.push(Buffer.from([b.length]), b)
  }
  const tail = Buffer.alloc(5)
  tail.writeUInt16BE(type, 1)
  tail.writeUInt16BE(1, 3)
  parts.push(tail)
  return Buffer.concat(parts)
}

/**
 * The addresses an answer gives for `name`: A/AAAA records of the name and of the CNAME chain
 * from it, the CNAMEs followed, and the smallest TTL among the records used.
 */
export function answerAddresses(
  msg: DnsMessage,
  name: string,
): { ips: string[]; cnames: string[]; ttl: number | undefined } {
  const names = new Set([name])
  const cnames: string[] = []
  let ttl: number | undefined
  // CNAME chains are short; iterate until no new name is added.
  for (let changed = true; changed; ) {
    changed = false
    for (const r of msg.answers) {
      if (r.type === DnsType.CNAME && names.has(r.name) && r.data && !names.has(r.data)) {
        names.add(r.data)
        cnames.push(r.data)
        ttl = ttl === undefined ? r.ttl : Math.min(ttl, r.ttl)
        changed = true
      }
    }
  }
  const ips: string[] = []
  for (const r of msg.answers) {
    if ((r.type === DnsType.A || r.type === DnsType.AAAA) && names.has(r.name) && r.data) {
      if (!ips.includes(r.data)) ips.push(r.data)
      ttl = ttl === undefined ? r.ttl : Math.min(ttl, r.ttl)
    }
  }
  return { ips, cnames, ttl }
}
