/**
 * The `membrane-policy` command, as a function of its arguments and an I/O interface so that it
 * stays testable and free of Node APIs (src/cli.ts wires it to the process).
 */
import type { ComputeOptions } from './compile'
import { PolicyError } from './errors'
import type { IdentityData } from './identity'
import { parseRequestHeaderLines } from './l7/http'
import type { MapState } from './mapstate'
import { parsePolicyDocuments, validatePolicyDocuments } from './parse'
import { protocolName } from './ports'
import {
  PolicyRepository,
  type TraceEndpoint,
  type TraceInput,
  traceEndpointLabels,
} from './repository'

/** What the CLI needs from its host. */
export interface CliIo {
  readFile(path: string): string
  stdout(text: string): void
  stderr(text: string): void
  /** What `--version` prints (the package's version; the host reads it). */
  version?: string
}

/**
 * The exit codes of `membrane-policy`, the same as `membrane`'s: 0 ok (trace: allowed),
 * 1 `validate` found invalid documents (or an unexpected failure), 2 bad usage or input
 * (including an unreadable file or an invalid policy given to trace/compile), 3 trace: denied.
 */
const CLI_EXIT = { OK: 0, FAILED: 1, USAGE: 2, DENIED: 3 } as const

/** The commands of `membrane-policy` (each one's usage is in {@link CLI_USAGE}). */
export const CLI_COMMANDS = ['validate', 'trace', 'compile'] as const

/** The usage text of `membrane-policy`. */
export const CLI_USAGE = `membrane-policy — validate, trace and compile Cilium / Kubernetes network policy

usage:
  membrane-policy validate <file>...                       check documents (exit 1 on errors)
  membrane-policy trace -f <file>... --from <ep> --to <ep> --port <n> [--protocol TCP]
                  [--http-method M --http-path P --http-host H --http-header 'Name: value'...]
                  [--kafka-api-key K --kafka-api-version N --kafka-client-id C
                   --kafka-topic T...] [--dns-name N]
  membrane-policy compile -f <file>... --endpoint <ep> [--identities <file.json>]
                  [--named-port name=port/proto]...
options:
  -o json       machine-readable output; an error is then {"error":{"code","message",...}}
                on stderr
  -f <file>     policy file (YAML or JSON; '-' for stdin), repeatable
  -h, --help    this help
  -V, --version the version
endpoints (<ep>):
  <namespace>:<k=v,k=v>     a pod, e.g. default:org=empire,class=deathstar
  world:<ip>                outside the cluster
  reserved:<name>           host, remote-node, kube-apiserver, health, ...
  {json}                    a TraceEndpoint object
identities file: JSON array of { "id": 1001, "labels": ["k8s:app=web", ...] }
exit codes: 0 ok (trace: allowed), 1 validate found invalid documents, 2 bad usage or input,
  3 trace: denied
`

interface Args {
  cmd: string | undefined
  positional: string[]
  flags: Map<string, string[]>
}

function integerArg(flag: string, v: string): number {
  if (!/^\d+$/.test(v))
    throw new PolicyError('INVALID_INPUT', `invalid --${flag} ${JSON.stringify(v)}`, {
      path: flag,
      expected: 'a non-negative integer',
      got: v,
    })
  return Number(v)
}

function parseArgs(argv: readonly string[]): Args {
  const flags = new Map<string, string[]>()
  const positional: string[] = []
  let cmd: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a.startsWith('-') && a !== '-') {
      const name = a.replace(/^--?/, '')
      if (name === 'h' || name === 'help' || name === 'V' || name === 'version') {
        flags.set(name.length === 1 ? (name === 'h' ? 'help' : 'version') : name, ['1'])
        continue
      }
      const v = argv[i + 1]
      // The next option is not a value ('-' alone is: stdin).
      if (v === undefined || (v.startsWith('-') && v !== '-')) {
        throw new PolicyError('INVALID_INPUT', `option ${a} needs a value`)
      }
      i++
      const list = flags.get(name) ?? []
      list.push(v)
      flags.set(name, list)
    } else if (cmd === undefined) cmd = a
    else positional.push(a)
  }
  return { cmd, positional, flags }
}

/** Parse an endpoint argument into a TraceEndpoint. */
export function parseEndpointArg(s: string): TraceEndpoint {
  if (s.startsWith('{')) {
    try {
      return JSON.parse(s) as TraceEndpoint
    } catch (e) {
      throw new PolicyError('INVALID_INPUT', `invalid endpoint ${JSON.stringify(s)}`, {
        expected: `a JSON object (${(e as Error).message})`,
      })
    }
  }
  const colon = s.indexOf(':')
  if (colon < 0)
    throw new PolicyError('INVALID_INPUT', `invalid endpoint ${JSON.stringify(s)}`, {
      expected: '<namespace>:<k=v,...>, world:<ip>, reserved:<name> or a JSON object',
    })
  const head = s.slice(0, colon)
  const rest = s.slice(colon + 1)
  if (head === 'world') return { ips: rest ? [rest] : [] }
  if (head === 'reserved') return { reserved: rest as NonNullable<TraceEndpoint['reserved']> }
  const labels: Record<string, string> = {}
  for (const kv of rest.split(',').filter(Boolean)) {
    const eq = kv.indexOf('=')
    if (eq <= 0)
      throw new PolicyError(
        'INVALID_INPUT',
        `invalid label ${JSON.stringify(kv)} in endpoint ${JSON.stringify(s)}`,
        { expected: 'key=value' },
      )
    labels[kv.slice(0, eq)] = kv.slice(eq + 1)
  }
  return { namespace: head, labels }
}

function portArg(v: string): number {
  if (!/^[0-9]{1,5}$/.test(v)) {
    throw new PolicyError('INVALID_INPUT', `--port expects a number, got ${JSON.stringify(v)}`)
  }
  return Number(v)
}

/** A file's text; an unreadable file is bad input naming the file, not a crash. */
function readInput(io: CliIo, file: string): string {
  try {
    return io.readFile(file)
  } catch (e) {
    throw new PolicyError('INVALID_INPUT', `cannot read ${file}: ${(e as Error).message}`)
  }
}

/** True when the arguments ask for `-o json` (looked at before parsing, for errors in parsing). */
function asksJson(argv: readonly string[]): boolean {
  return argv.some(
    (a, i) => ((a === '-o' || a === '--output') && argv[i + 1] === 'json') || a === '--output=json',
  )
}

function loadRepo(io: CliIo, files: readonly string[]): PolicyRepository {
  const repo = new PolicyRepository()
  const docs = files.flatMap((f) => {
    const text = readInput(io, f)
    try {
      return parsePolicyDocuments(text)
    } catch (e) {
      if (e instanceof PolicyError)
        throw new PolicyError(e.code, `${f}: ${e.message}`, {
          ...(e.documentIndex !== undefined ? { documentIndex: e.documentIndex } : {}),
          ...(e.path !== undefined ? { path: e.path } : {}),
          cause: e,
        })
      throw e
    }
  })
  repo.upsert(docs)
  return repo
}

function readIdentities(io: CliIo, file: string): IdentityData[] {
  const text = readInput(io, file)
  try {
    return JSON.parse(text) as IdentityData[]
  } catch (e) {
    throw new PolicyError('INVALID_INPUT', `--identities ${file}: ${(e as Error).message}`, {
      expected: 'a JSON array of { "id": 1001, "labels": ["k8s:app=web", ...] }',
    })
  }
}

function formatMapState(ms: MapState): string {
  const lines = [
    'DIRECTION  IDENTITY  PROTO  PORT/PREFIX   VERDICT  PROXY        AUTH  DERIVED FROM',
  ]
  for (const e of ms.sorted()) {
    const k = e.key
    const v = e.value
    lines.push(
      [
        k.direction.padEnd(9),
        String(k.identity).padStart(8),
        protocolName(k.protocol).padEnd(6),
        (k.protocol === 0
          ? 'any'
          : k.portPrefixLen === 0
            ? 'any'
            : `${k.port}/${k.portPrefixLen}`
        ).padEnd(12),
        (v.deny ? 'deny' : 'allow').padEnd(7),
        (v.l7Parser ? `${v.l7Parser}:${v.proxyPort}` : '-').padEnd(12),
        String(v.authType).padEnd(4),
        v.derivedFrom.join(', '),
      ].join('  '),
    )
  }
  lines.push(`default deny: ingress=${ms.defaultDeny.ingress} egress=${ms.defaultDeny.egress}`)
  return `${lines.join('\n')}\n`
}

/**
 * Run the CLI; returns the exit code ({@link CLI_EXIT}). Errors are one line on stderr, or under
 * `-o json` one JSON object `{"error":{"code","message",...}}` on stderr; stdout carries results.
 */
export function runCli(argv: readonly string[], io: CliIo): number {
  const json = asksJson(argv)
  const fail = (e: PolicyError | Error, code: string): void => {
    if (!json) io.stderr(`error [${code}]: ${e.message}\n`)
    else {
      const p = e instanceof PolicyError ? e : undefined
      const error = {
        code,
        message: e.message,
        ...(p?.documentIndex !== undefined ? { documentIndex: p.documentIndex } : {}),
        ...(p?.path !== undefined ? { path: p.path } : {}),
        ...(p?.expected !== undefined ? { expected: p.expected } : {}),
      }
      io.stderr(`${JSON.stringify({ error })}\n`)
    }
  }
  try {
    return run(argv, io, json)
  } catch (e) {
    if (e instanceof PolicyError) {
      fail(e, e.code)
      return CLI_EXIT.USAGE
    }
    fail(e as Error, 'INTERNAL')
    return CLI_EXIT.FAILED
  }
}

function run(argv: readonly string[], io: CliIo, json: boolean): number {
  const args = parseArgs(argv)
  if (args.flags.has('help')) {
    io.stdout(CLI_USAGE)
    return CLI_EXIT.OK
  }
  if (args.flags.has('version')) {
    io.stdout(`membrane-policy ${io.version ?? 'unknown'}\n`)
    return CLI_EXIT.OK
  }
  if (!args.cmd) {
    if (json)
      throw new PolicyError('INVALID_INPUT', 'a command is needed', {
        expected: CLI_COMMANDS.join(', '),
      })
    io.stderr(CLI_USAGE)
    return CLI_EXIT.USAGE
  }
  const files = [...(args.flags.get('f') ?? []), ...(args.flags.get('file') ?? [])]
  const one = (name: string): string => {
    const v = args.flags.get(name)?.[0]
    if (v === undefined) throw new PolicyError('INVALID_INPUT', `missing --${name}`)
    return v
  }
  switch (args.cmd) {
    case 'validate': {
      const paths = [...args.positional, ...files]
      if (!paths.length) throw new PolicyError('INVALID_INPUT', 'validate needs at least one file')
      let bad = 0
      const report: Array<{
        file: string
        index: number
        ok: boolean
        code?: string
        path?: string
        message?: string
      }> = []
      for (const f of paths) {
        for (const r of validatePolicyDocuments(readInput(io, f))) {
          if (!r.ok) bad++
          const item: (typeof report)[number] = { file: f, index: r.index, ok: r.ok }
          if (r.error) {
            item.code = r.error.code
            if (r.error.path !== undefined) item.path = r.error.path
            item.message = r.error.message
          }
          report.push(item)
        }
      }
      if (json) io.stdout(`${JSON.stringify({ ok: bad === 0, documents: report }, null, 2)}\n`)
      else
        for (const r of report)
          io.stdout(r.ok ? `${r.file}[${r.index}]: ok\n` : `${r.file}: ${r.code}: ${r.message}\n`)
      return bad ? CLI_EXIT.FAILED : CLI_EXIT.OK
    }
    case 'trace': {
      const repo = loadRepo(io, files)
      const input: TraceInput = {
        source: parseEndpointArg(one('from')),
        destination: parseEndpointArg(one('to')),
        port: portArg(one('port')),
        protocol: args.flags.get('protocol')?.[0] ?? 'TCP',
      }
      const method = args.flags.get('http-method')?.[0]
      const path = args.flags.get('http-path')?.[0]
      const headerLines = args.flags.get('http-header') ?? []
      if (method !== undefined || path !== undefined || headerLines.length > 0) {
        input.http = { method: method ?? 'GET', path: path ?? '/' }
        const host = args.flags.get('http-host')?.[0]
        if (host !== undefined) input.http.host = host
        if (headerLines.length) input.http.headers = parseRequestHeaderLines(headerLines)
      }
      const apiKey = args.flags.get('kafka-api-key')?.[0]
      if (apiKey !== undefined) {
        const version = args.flags.get('kafka-api-version')?.[0]
        const clientID = args.flags.get('kafka-client-id')?.[0]
        input.kafka = { apiKey: /^\d+$/.test(apiKey) ? Number(apiKey) : apiKey }
        if (version !== undefined) input.kafka.apiVersion = integerArg('kafka-api-version', version)
        if (clientID !== undefined) input.kafka.clientID = clientID
        input.kafka.topics = args.flags.get('kafka-topic') ?? []
      }
      const dnsName = args.flags.get('dns-name')?.[0]
      if (dnsName !== undefined) input.dns = { name: dnsName }
      const r = repo.trace(input)
      if (json) io.stdout(`${JSON.stringify(r, null, 2)}\n`)
      else {
        io.stdout(`verdict: ${r.verdict.toUpperCase()}\n`)
        io.stdout(`  egress  (source):      ${r.egress.verdict} — ${r.egress.explanation}\n`)
        io.stdout(`  ingress (destination): ${r.ingress.verdict} — ${r.ingress.explanation}\n`)
      }
      return r.verdict === 'allowed' ? CLI_EXIT.OK : CLI_EXIT.DENIED
    }
    case 'compile': {
      const repo = loadRepo(io, files)
      const ep = parseEndpointArg(one('endpoint'))
      const idFile = args.flags.get('identities')?.[0]
      const identities: IdentityData[] = idFile ? readIdentities(io, idFile) : []
      const namedPorts: Record<string, { port: number; protocol: string }> = {}
      for (const np of args.flags.get('named-port') ?? []) {
        const m = /^([a-z0-9-]+)=(\d+)(?:\/(TCP|UDP|SCTP))?$/i.exec(np)
        if (!m)
          throw new PolicyError('INVALID_INPUT', `invalid --named-port ${JSON.stringify(np)}`, {
            expected: 'name=port/PROTO',
          })
        namedPorts[(m[1] as string).toLowerCase()] = {
          port: Number(m[2]),
          protocol: (m[3] ?? 'TCP').toUpperCase(),
        }
      }
      const options: ComputeOptions = {}
      const ms = repo.computeMapState(
        { labels: traceEndpointLabels(ep), namedPorts },
        identities,
        options,
      )
      if (json)
        io.stdout(
          `${JSON.stringify({ endpoint: traceEndpointLabels(ep), ...ms.toJSON() }, null, 2)}\n`,
        )
      else io.stdout(formatMapState(ms))
      return CLI_EXIT.OK
    }
    default:
      throw new PolicyError('INVALID_INPUT', `unknown command ${JSON.stringify(args.cmd)}`, {
        expected: CLI_COMMANDS.join(', '),
      })
  }
}
