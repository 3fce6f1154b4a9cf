/** `membrane observe`: the `hubble observe` of Membrane, as a function the agent's CLI calls. */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { dropReasonFromName } from './drop-reasons'
import { EventType } from './event'
import type { FlowFilter } from './filter'
import { formatResponse, type OutputFormat, tableHeader } from './format'
import { ObserverClient } from './grpc'
import type { GetFlowsRequest } from './observer'
import { renderServiceMapSvg, ServiceMapBuilder } from './servicemap'
import { IPVersion, type TCPFlags, type Timestamp, TrafficDirection, Verdict } from './types'

/** Where `runObserve` reads and writes. */
export interface ObserveIO {
  /** Observer target when --server is not given (default 'localhost:4245'). */
  target?: string
  stdout?: NodeJS.WritableStream & { isTTY?: boolean }
  stderr?: NodeJS.WritableStream
  /** Override TTY detection (colour). Default: stdout.isTTY. */
  isTTY?: boolean
  /** Stops a --follow stream. */
  signal?: AbortSignal
  /** A client to use instead of dialing (tests, in-process use). */
  client?: Pick<ObserverClient, 'getFlows'>
  /** Clock for relative --since/--until (default Date.now). */
  now?: () => number
}

/** A usage error: bad flag or value. */
export class ObserveUsageError extends Error {
  readonly code = 'USAGE' as const
  constructor(message: string) {
    super(message)
    this.name = 'ObserveUsageError'
  }
}

/** Usage text of `membrane observe`. */
export const OBSERVE_USAGE = `Usage: membrane observe [flags]

Show flows from the observer, like hubble observe.

Selection:
  -f, --follow               keep streaming new flows
      --last N               the last N flows (default 20 without --follow/--since/--first/--all)
      --first N              the first N flows in the ring
      --all                  every flow in the ring
      --since T, --until T   RFC 3339 time or a duration ago (30s, 5m, 1h30m)
Filters (repeat a flag for alternatives; --not negates the next filter flag):
      --ip, --from-ip, --to-ip            IP or CIDR
      --pod, --from-pod, --to-pod         [namespace/]pod-name-prefix
  -n, --namespace, --from-namespace, --to-namespace
  -l, --label, --from-label, --to-label   label selector (k8s:app=web, app in (a,b))
      --identity, --from-identity, --to-identity
      --port, --from-port, --to-port
      --fqdn, --from-fqdn, --to-fqdn      DNS name (* wildcards)
      --service, --from-service, --to-service
      --verdict V            FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED, TRANSLATED
      --protocol P           tcp, udp, icmp, icmpv4, icmpv6, sctp, http, dns, kafka
      --traffic-direction D  ingress | egress
      --http-method M, --http-path REGEX, --http-status CODE (404, 5+)
      --http-url REGEX       regular expression on the full URL
      --drop-reason-desc R   POLICY_DENIED, POLICY_DENY ... or a number
      --tcp-flags F          SYN, SYN,ACK, FIN, RST ...
  -t, --type T               drop, trace[:to-endpoint|from-endpoint|...], policy-verdict, l7, sock
      --node-name PATTERN, --ipv4, --ipv6
      --node-label SELECTOR  label selector on the node's labels (zone=east)
Output:
  -o, --output FORMAT        compact (default), dict, json (jsonpb), table
      --color MODE           auto (default: when stdout is a TTY), always, never
      --print-node-name      prefix lines with the node name
      --graph FILE           also write a service map (SVG) of the flows shown
      --server TARGET        observer address (host:port or unix:///path)
`

const STRING_FLAGS = [
  'last',
  'first',
  'since',
  'until',
  'output',
  'color',
  'graph',
  'server',
  'ip',
  'from-ip',
  'to-ip',
  'pod',
  'from-pod',
  'to-pod',
  'namespace',
  'from-namespace',
  'to-namespace',
  'label',
  'from-label',
  'to-label',
  'identity',
  'from-identity',
  'to-identity',
  'port',
  'from-port',
  'to-port',
  'fqdn',
  'from-fqdn',
  'to-fqdn',
  'service',
  'from-service',
  'to-service',
  'verdict',
  'protocol',
  'traffic-direction',
  'http-method',
  'http-path',
  'http-url',
  'drop-reason-desc',
  'node-label',
  'http-status',
  'tcp-flags',
  'type',
  'node-name',
] as const
const BOOL_FLAGS = ['follow', 'all', 'not', 'ipv4', 'ipv6', 'print-node-name', 'help'] as const
const SHORT: Record<string, string> = {
  f: 'follow',
  o: 'output',
  l: 'label',
  t: 'type',
  n: 'namespace',
  h: 'help',
}

const TRACE_POINTS: Record<string, number> = {
  'to-endpoint': 0,
  'to-proxy': 1,
  'to-host': 2,
  'to-stack': 3,
  'to-overlay': 4,
  'from-endpoint': 5,
  'from-proxy': 6,
  'from-host': 7,
  'from-stack': 8,
  'from-overlay': 9,
  'from-network': 10,
  'to-network': 11,
}

/** Parse `30s`, `5m`, `1h30m`, `2h` into milliseconds. */
function parseDuration(text: string): number | undefined {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text)
  if (!m || text === '') return undefined
  return ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 1000
}

function parseTime(flag: string, text: string, now: number): Timestamp {
  const d = parseDuration(text)
  const ms = d !== undefined ? now - d : Date.parse(text)
  if (Number.isNaN(ms))
    throw new ObserveUsageError(
      `--${flag}: expected an RFC 3339 time or a duration like 5m, got '${text}'`,
    )
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 }
}

type Side = 'both' | 'from' | 'to'
interface Builder {
  left: FlowFilter
  right: FlowFilter
  sided: boolean
}

type ListKey = Exclude<keyof FlowFilter, 'experimental'>

function push<K extends ListKey>(
  f: FlowFilter,
  key: K,
  value: NonNullable<FlowFilter[K]>[number],
): void {
  const arr = (f[key] ?? []) as unknown[]
  arr.push(value)
  ;(f as Record<string, unknown>)[key] = arr
}

const SIDED: Record<string, [ListKey, ListKey, (v: string, flag: string) => unknown]> = {
  ip: ['sourceIp', 'destinationIp', (v) => v],
  pod: ['sourcePod', 'destinationPod', (v) => v],
  namespace: ['sourcePod', 'destinationPod', (v) => `${v}/`],
  label: ['sourceLabel', 'destinationLabel', (v) => v],
  identity: [
    'sourceIdentity',
    'destinationIdentity',
    (v, flag) => {
      if (!/^\d+$/.test(v))
        throw new ObserveUsageError(`--${flag}: expected a numeric identity, got '${v}'`)
      return Number(v)
    },
  ],
  port: ['sourcePort', 'destinationPort', (v) => v],
  fqdn: ['sourceFqdn', 'destinationFqdn', (v) => v],
  service: ['sourceService', 'destinationService', (v) => v],
}

function verdictOf(v: string): number {
  const n = (Verdict as Record<string, number>)[v.toUpperCase()]
  if (n === undefined)
    throw new ObserveUsageError(
      `--verdict: unknown verdict '${v}' (expected ${Object.keys(Verdict).join(', ')})`,
    )
  return n
}

function typeFilter(v: string): { type: number; matchSubType?: boolean; subType?: number } {
  const [kind, sub] = v.toLowerCase().split(':')
  switch (kind) {
    case 'drop':
      return { type: EventType.DROP }
    case 'trace': {
      if (sub === undefined) return { type: EventType.TRACE }
      const p = TRACE_POINTS[sub]
      if (p === undefined)
        throw new ObserveUsageError(
          `--type: unknown trace point '${sub}' (expected ${Object.keys(TRACE_POINTS).join(', ')})`,
        )
      return { type: EventType.TRACE, matchSubType: true, subType: p }
    }
    case 'policy-verdict':
      return { type: EventType.POLICY_VERDICT }
    case 'l7':
      return { type: EventType.ACCESS_LOG }
    case 'sock':
    case 'trace-sock':
      return { type: EventType.SOCK_LB }
    default:
      throw new ObserveUsageError(
        `--type: unknown type '${v}' (expected drop, trace[:point], policy-verdict, l7, sock)`,
      )
  }
}

function tcpFlagsOf(v: string): TCPFlags {
  const out: TCPFlags = {}
  for (const f of v.toUpperCase().split(/[,|]/)) {
    if (!['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'].includes(f)) {
      throw new ObserveUsageError(`--tcp-flags: unknown flag '${f}'`)
    }
    out[f as keyof TCPFlags] = true
  }
  return out
}

/** The parsed command line of `membrane observe`. */
export interface ObserveOptions {
  request: GetFlowsRequest
  output: OutputFormat
  color: 'auto' | 'always' | 'never'
  printNodeName: boolean
  graph?: string
  server?: string
  help: boolean
}

/**
 * Parse `membrane observe` arguments into a GetFlows request and output options.
 * Filter flags build Hubble's pair of filters: sided flags (--ip, --pod, ...) match either the
 * source (first filter) or the destination (second filter); --from-* / --to-* and the others
 * apply to both. `--not` moves the next filter flag into a blacklist filter.
 * @throws ObserveUsageError for an unknown flag or a bad value.
 */
export function parseObserveArgs(argv: readonly string[], now = Date.now()): ObserveOptions {
  const options: Record<
    string,
    { type: 'string' | 'boolean'; multiple?: boolean; short?: string }
  > = {}
  for (const f of STRING_FLAGS) options[f] = { type: 'string', multiple: true }
  for (const f of BOOL_FLAGS) options[f] = { type: 'boolean', multiple: f === 'not' }
  for (const [s, long] of Object.entries(SHORT))
    if (options[long]) (options[long] as { short?: string }).short = s
  let tokens: NonNullable<ReturnType<typeof parseArgs>['tokens']>
  try {
    tokens =
      parseArgs({ args: [...argv], options, allowPositionals: false, strict: true, tokens: true })
        .tokens ?? []
  } catch (e) {
    throw new ObserveUsageError((e as Error).message)
  }
  const white: Builder = { left: {}, right: {}, sided: false }
  const black: Builder = { left: {}, right: {}, sided: false }
  const opts: ObserveOptions = {
    request: {},
    output: 'compact',
    color: 'auto',
    printNodeName: false,
    help: false,
  }
  let negate = false
  let last: number | undefined
  let all = false
  const num = (flag: string, v: string) => {
    if (!/^\d+$/.test(v)) throw new ObserveUsageError(`--${flag}: expected a number, got '${v}'`)
    return Number(v)
  }
  for (const t of tokens) {
    if (t.kind !== 'option') continue
    const name = t.name
    const v = t.value ?? ''
    const b = negate ? black : white
    const both = (fn: (f: FlowFilter) => void) => {
      fn(b.left)
      fn(b.right)
    }
    let isFilter = true
    const sideMatch = /^(from|to)-(.+)$/.exec(name)
    const base = sideMatch ? (sideMatch[2] as string) : name
    const side: Side = sideMatch ? (sideMatch[1] as Side) : 'both'
    const sided = SIDED[base]
    if (sided) {
      const [srcKey, dstKey, conv] = sided
      const value = conv(v, name) as never
      if (side === 'from') both((f) => push(f, srcKey, value))
      else if (side === 'to') both((f) => push(f, dstKey, value))
      else {
        push(b.left, srcKey, value)
        push(b.right, dstKey, value)
        b.sided = true
      }
    } else {
      switch (name) {
        case 'verdict':
          both((f) => push(f, 'verdict', verdictOf(v)))
          break
        case 'protocol':
          both((f) => push(f, 'protocol', v))
          break
        case 'traffic-direction': {
          const d =
            v.toLowerCase() === 'ingress'
              ? TrafficDirection.INGRESS
              : v.toLowerCase() === 'egress'
                ? TrafficDirection.EGRESS
                : undefined
          if (d === undefined)
            throw new ObserveUsageError(
              `--traffic-direction: expected ingress or egress, got '${v}'`,
            )
          both((f) => push(f, 'trafficDirection', d))
          break
        }
        case 'http-method':
          both((f) => push(f, 'httpMethod', v))
          break
        case 'http-path':
          both((f) => push(f, 'httpPath', v))
          break
        case 'http-url':
          both((f) => push(f, 'httpUrl', v))
          break
        case 'drop-reason-desc': {
          const r = dropReasonFromName(v.toUpperCase())
          if (r === undefined)
            throw new ObserveUsageError(`--drop-reason-desc: unknown drop reason '${v}'`)
          both((f) => push(f, 'dropReasonDesc', r))
          break
        }
        case 'node-label':
          both((f) => push(f, 'nodeLabels', v))
          break
        case 'http-status':
          both((f) => push(f, 'httpStatusCode', v))
          break
        case 'tcp-flags':
          both((f) => push(f, 'tcpFlags', tcpFlagsOf(v)))
          break
        case 'type':
          both((f) => push(f, 'eventType', typeFilter(v)))
          break
        case 'node-name':
          both((f) => push(f, 'nodeName', v))
          break
        case 'ipv4':
          both((f) => push(f, 'ipVersion', IPVersion.IPv4))
          break
        case 'ipv6':
          both((f) => push(f, 'ipVersion', IPVersion.IPv6))
          break
        default:
          isFilter = false
      }
    }
    if (isFilter) {
      negate = false
      continue
    }
    switch (name) {
      case 'not':
        negate = true
        break
      case 'follow':
        opts.request.follow = true
        break
      case 'all':
        all = true
        break
      case 'last':
        last = num(name, v)
        break
      case 'first':
        opts.request.first = true
        opts.request.number = num(name, v)
        break
      case 'since':
        opts.request.since = parseTime(name, v, now)
        break
      case 'until':
        opts.request.until = parseTime(name, v, now)
        break
      case 'output': {
        const o = v === 'jsonpb' ? 'json' : v
        if (o !== 'compact' && o !== 'json' && o !== 'table' && o !== 'dict') {
          throw new ObserveUsageError(`--output: expected compact, dict, json or table, got '${v}'`)
        }
        opts.output = o
        break
      }
      case 'color':
        if (v !== 'auto' && v !== 'always' && v !== 'never')
          throw new ObserveUsageError(`--color: expected auto, always or never, got '${v}'`)
        opts.color = v
        break
      case 'print-node-name':
        opts.printNodeName = true
        break
      case 'graph':
        opts.graph = v
        break
      case 'server':
        opts.server = v
        break
      case 'help':
        opts.help = true
        break
    }
  }
  if (negate) throw new ObserveUsageError('--not must be followed by a filter flag')
  const finish = (bld: Builder): FlowFilter[] => {
    const empty = (f: FlowFilter) => Object.keys(f).length === 0
    if (bld.sided) return [bld.left, bld.right]
    return empty(bld.left) ? [] : [bld.left]
  }
  const wl = finish(white)
  const bl = finish(black)
  if (wl.length) opts.request.whitelist = wl
  if (bl.length) opts.request.blacklist = bl
  if (opts.request.first && opts.request.follow)
    throw new ObserveUsageError('--first cannot be combined with --follow')
  if (last !== undefined) opts.request.number = last
  else if (!opts.request.first && !opts.request.follow && !opts.request.since && !all)
    opts.request.number = 20
  return opts
}

/**
 * Run `membrane observe` with `argv` (the arguments after `observe`). Prints flows to stdout in
 * the chosen format and returns the exit code (0 ok, 1 server error, 2 usage error).
 * @example
 * process.exitCode = await runObserve(process.argv.slice(3), { target: 'unix:///run/membrane/observer.sock' })
 */
export async function runObserve(argv: readonly string[], io: ObserveIO = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout
  const stderr = io.stderr ?? process.stderr
  let opts: ObserveOptions
  try {
    opts = parseObserveArgs(argv, io.now?.() ?? Date.now())
  } catch (e) {
    stderr.write(`membrane observe: ${(e as Error).message}\n\n${OBSERVE_USAGE}`)
    return 2
  }
  if (opts.help) {
    stdout.write(OBSERVE_USAGE)
    return 0
  }
  const tty = io.isTTY ?? (stdout as { isTTY?: boolean }).isTTY ?? false
  const color = opts.color === 'always' || (opts.color === 'auto' && tty)
  const owned = io.client
    ? undefined
    : new ObserverClient(opts.server ?? io.target ?? 'localhost:4245')
  const client = io.client ?? (owned as ObserverClient)
  const graph = new ServiceMapBuilder()
  let graphFlows = 0
  let code = 0
  // Stop cleanly when the caller aborts or the reader of stdout goes away (`| head`).
  const ac = new AbortController()
  const onAbort = () => ac.abort()
  io.signal?.addEventListener('abort', onAbort, { once: true })
  if (io.signal?.aborted) ac.abort()
  const onOutputError = () => ac.abort()
  stdout.on('error', onOutputError)
  try {
    if (opts.output === 'table') stdout.write(`${tableHeader()}\n`)
    for await (const r of client.getFlows(opts.request, ac.signal)) {
      const line = formatResponse(r, opts.output, { color, nodeName: opts.printNodeName })
      if (line) stdout.write(`${line}\n`)
      if (opts.graph && r.flow) {
        graph.add(r.flow)
        graphFlows++
      }
      if (ac.signal.aborted) break
    }
  } catch (e) {
    if (!ac.signal.aborted) {
      const err = e as { code?: number; details?: string; message?: string }
      stderr.write(`membrane observe: ${err.details ?? err.message ?? String(e)}\n`)
      code = 1
    }
  } finally {
    io.signal?.removeEventListener('abort', onAbort)
    stdout.off('error', onOutputError)
    owned?.close()
  }
  if (opts.graph) {
    writeFileSync(
      opts.graph,
      renderServiceMapSvg(graph.map(), { title: `Service map (${graphFlows} flows)` }),
    )
    stderr.write(`membrane observe: wrote service map of ${graphFlows} flows to ${opts.graph}\n`)
  }
  return code
}
