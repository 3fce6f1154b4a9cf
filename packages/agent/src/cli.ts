import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import { runObserve } from '@membrane/flows'
import { Agent, type AgentStatus, type EndpointView } from './agent'
import { isLive } from './api'
import { AgentClient, DEFAULT_SOCKET } from './client'
import { loadConfig } from './config'
import { observerSocketFor, startDaemon } from './daemon'
import { AgentError } from './errors'
import { parseLabelList } from './names'
import type { ServiceRecord } from './state'
import { formatLabels, renderTable } from './table'

/** Where CLI output goes (injectable for tests). */
export interface CliIo {
  out(text: string): void
  err(text: string): void
}

const defaultIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
}

/** A usage error: exit code 2 with the command's help. */
class UsageError extends Error {}

const HELP = `membrane — the Membrane agent and its CLI

Usage: membrane <command> [flags]   (every command takes --socket PATH and -o json|table)

  agent                     run the agent (daemon) in the foreground
  agent cleanup             remove everything the agent made (same flags; stop the agent first)
      --config FILE --bpffs-root DIR --state-dir DIR --socket PATH --ipam-pool CIDR
      --metrics-port N --metrics-address ADDR --kvstore memory|etcd --etcd-endpoints URL,...
      --log-level LEVEL --prefix NAME --proxy-port N --socket-lb-cgroups PATH,...
  status                    components, kernel features, bandwidth mode, counts
  endpoint create --name N [--namespace NS] [--labels k=v,...] [--interface IF] [--ip IP]
                  [--egress-bandwidth RATE] [--ingress-bandwidth RATE]
  endpoint list | get NS/NAME | delete NS/NAME
  policy import -f FILE     validate and apply atomically (all documents or none)
  policy get [NAME] | delete NAME [--namespace NS] [--kind KIND]
  policy trace --from NS/NAME --to NS/NAME --port N [--protocol TCP|UDP]
               [--http-method M --http-path P]
  service create --name N --vip IP --port N [--namespace NS] [--target-port N]
               [--protocol TCP|UDP] [--algorithm random|maglev] [--selector k=v,...] [--backends a,b]
  service list | delete NS/NAME
  identity list
  bpf policy get NS/NAME    the endpoint's BPF policy map
  bpf lb list               the BPF service and backend maps
  observe [--follow] [--last N] [--verdict V] [--from-pod NS/NAME] [--to-pod NS/NAME]
          [--port N] [--protocol P] [--http-method M] [-o compact|json|table] [--graph FILE]
          (hubble observe's flags: \`membrane observe --help\`)
  monitor                   raw datapath events as they arrive
`

/**
 * Run the `membrane` CLI with `argv` (without node and the script). Resolves with the exit
 * code: 0 success, 1 the agent refused or failed, 2 bad usage.
 */
export async function runCli(argv: string[], io: CliIo = defaultIo): Promise<number> {
  try {
    return await dispatch(argv, io)
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`membrane: ${error.message}\nRun \`membrane help\` for usage.\n`)
      return 2
    }
    if (error instanceof AgentError) {
      io.err(`membrane: ${error.message}${error.code === 'INTERNAL' ? '' : ` (${error.code})`}\n`)
      return error.code === 'INVALID_INPUT' || error.code === 'TOO_LARGE' ? 2 : 1
    }
    io.err(`membrane: ${(error as Error).message}\n`)
    return 1
  }
}

type Flags = Record<string, string | boolean | undefined>

function parse(
  args: string[],
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>,
  positionals = 0,
): { flags: Flags; positionals: string[] } {
  try {
    const r = parseArgs({
      args,
      options: {
        ...options,
        socket: { type: 'string' },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    })
    if (r.positionals.length > positionals) {
      throw new UsageError(`unexpected argument ${JSON.stringify(r.positionals[positionals])}`)
    }
    const out = r.values.output
    if (out !== undefined && !['json', 'table', 'compact'].includes(out as string)) {
      throw new UsageError(`-o must be json, table or compact, got ${JSON.stringify(out)}`)
    }
    return { flags: r.values as Flags, positionals: r.positionals }
  } catch (error) {
    if (error instanceof UsageError) throw error
    throw new UsageError((error as Error).message)
  }
}

function need(flags: Flags, name: string): string {
  const v = flags[name]
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`)
  return v
}

function num(flags: Flags, name: string): number | undefined {
  const v = flags[name]
  if (v === undefined) return undefined
  if (typeof v !== 'string' || !/^[0-9]+$/.test(v)) {
    throw new UsageError(`--${name} expects a number, got ${JSON.stringify(v)}`)
  }
  return Number(v)
}

function refPath(ref: string | undefined, what: string): string {
  if (!ref) throw new UsageError(`${what} needs NAMESPACE/NAME (or NAME in namespace default)`)
  const parts = ref.split('/')
  if (parts.length > 2 || parts.some((p) => !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(p))) {
    throw new AgentError(
      'INVALID_INPUT',
      `${what}: ${JSON.stringify(ref)} is not NAMESPACE/NAME with names of [a-z0-9-]`,
      { field: what },
    )
  }
  return parts.length === 2 ? `${parts[0]}/${parts[1]}` : `default/${parts[0]}`
}

async function dispatch(argv: string[], io: CliIo): Promise<number> {
  const [cmd, sub, ...rest] = argv
  const json = (v: unknown): number => {
    io.out(`${JSON.stringify(v, null, 2)}\n`)
    return 0
  }
  const client = (flags: Flags) =>
    new AgentClient((flags.socket as string | undefined) ?? DEFAULT_SOCKET)
  const wantJson = (flags: Flags) => flags.output === 'json'

  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out(HELP)
      return 0
    case 'agent':
      return runAgent(sub === undefined ? [] : [sub, ...rest], io)
    case 'status': {
      const { flags } = parse(sub === undefined ? [] : [sub, ...rest], {})
      const s = await client(flags).get<AgentStatus>('/v1/status')
      if (wantJson(flags)) return json(s)
      io.out(
        renderTable(
          ['COMPONENT', 'STATE', 'DETAIL'],
          Object.entries(s.components).map(([k, v]) => [k, v.state, v.detail]),
        ),
      )
      io.out(`\nnode ${s.nodeName}, router ${s.router}, up ${s.uptimeSeconds}s\n`)
      io.out(`bandwidth: ${s.bandwidthMode}\n`)
      for (const [k, v] of Object.entries(s.kernel)) io.out(`kernel ${k}: ${String(v)}\n`)
      io.out(
        `endpoints ${s.counts.endpoints}, policies ${s.counts.policies}, services ${s.counts.services}, identities ${s.counts.identities}\n`,
      )
      return 0
    }
    case 'endpoint':
      return endpointCmd(sub, rest, io, client, wantJson, json)
    case 'service':
      return serviceCmd(sub, rest, io, client, wantJson, json)
    case 'policy':
      return policyCmd(sub, rest, io, client, wantJson, json)
    case 'identity': {
      if (sub !== 'list') throw new UsageError('identity has one command: list')
      const { flags } = parse(rest, {})
      const ids =
        await client(flags).get<{ id: number; labels: string[]; endpoints: string[] }[]>(
          '/v1/identities',
        )
      if (wantJson(flags)) return json(ids)
      io.out(
        renderTable(
          ['ID', 'LABELS', 'ENDPOINTS'],
          ids.map((i) => [i.id, i.labels.join(' '), i.endpoints.join(', ')]),
        ),
      )
      return 0
    }
    case 'bpf': {
      if (sub === 'policy') {
        const [verb, ...more] = rest
        if (verb !== 'get') throw new UsageError('bpf policy has one command: get NS/NAME')
        const { flags, positionals } = parse(more, {}, 1)
        const path = refPath(positionals[0], 'endpoint')
        const map = await client(flags).get<{ source: string; entries: Record<string, unknown>[] }>(
          `/v1/bpf/policy/${path}`,
        )
        if (wantJson(flags)) return json(map)
        if (map.source !== 'bpf') {
          io.out('# computed map state (the datapath is not loaded: nothing is in a BPF map)\n')
        }
        io.out(
          renderTable(
            ['DIRECTION', 'IDENTITY', 'PROTO', 'PORT', 'DECISION', 'PROXY PORT', 'DERIVED FROM'],
            map.entries.map((e) => [
              e.direction as string,
              e.identity as number,
              e.protocol as string,
              e.port as string,
              e.decision as string,
              e.proxyPort as number,
              ((e.derivedFrom as string[] | undefined) ?? []).join(' '),
            ]),
          ),
        )
        return 0
      }
      if (sub === 'lb') {
        const [verb, ...more] = rest
        if (verb !== 'list') throw new UsageError('bpf lb has one command: list')
        const { flags } = parse(more, {})
        const lb =
          await client(flags).get<{ frontend: string; backends: string[]; algorithm: string }[]>(
            '/v1/bpf/lb',
          )
        if (wantJson(flags)) return json(lb)
        io.out(
          renderTable(
            ['FRONTEND', 'ALGORITHM', 'BACKENDS'],
            lb.map((s) => [s.frontend, s.algorithm, s.backends.join(', ')]),
          ),
        )
        return 0
      }
      throw new UsageError('bpf has: policy get, lb list')
    }
    case 'observe':
      return observeCmd(sub === undefined ? [] : [sub, ...rest], io)
    case 'monitor': {
      const { flags } = parse(sub === undefined ? [] : [sub, ...rest], {})
      const s = client(flags).stream('/v1/monitor', (e) => io.out(`${JSON.stringify(e)}\n`))
      process.once('SIGINT', () => s.close())
      await s.done
      return 0
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(cmd)}`)
  }
}

async function runAgent(args: string[], io: CliIo): Promise<number> {
  const cleanup = args[0] === 'cleanup'
  if (cleanup) args = args.slice(1)
  const { flags } = parse(args, {
    config: { type: 'string' },
    'bpffs-root': { type: 'string' },
    'state-dir': { type: 'string' },
    'ipam-pool': { type: 'string' },
    'metrics-port': { type: 'string' },
    'metrics-address': { type: 'string' },
    kvstore: { type: 'string' },
    'etcd-endpoints': { type: 'string' },
    'log-level': { type: 'string' },
    prefix: { type: 'string' },
    'proxy-port': { type: 'string' },
    'socket-lb-cgroups': { type: 'string' },
  })
  let kvstore: unknown
  if (flags.kvstore === 'etcd') {
    kvstore = {
      type: 'etcd',
      endpoints: String(flags['etcd-endpoints'] ?? '')
        .split(',')
        .filter(Boolean),
    }
  } else if (flags.kvstore !== undefined) {
    kvstore = flags.kvstore
  } else if (flags['etcd-endpoints'] !== undefined) {
    throw new UsageError('--etcd-endpoints needs --kvstore etcd')
  }
  const config = loadConfig({
    ...(typeof flags.config === 'string' ? { file: flags.config } : {}),
    flags: {
      bpffsRoot: flags['bpffs-root'],
      stateDir: flags['state-dir'],
      socketPath: flags.socket,
      ipamPool: flags['ipam-pool'],
      metricsPort: flags['metrics-port'],
      metricsAddress: flags['metrics-address'],
      kvstore,
      logLevel: flags['log-level'],
      prefix: flags.prefix,
      proxyPort: flags['proxy-port'],
      socketLbCgroups: flags['socket-lb-cgroups'],
    },
  })
  if (cleanup) {
    // Remove everything this agent configuration made: endpoints (namespaces, veths, programs,
    // map entries), services, pins, the host device. The state directory is emptied.
    if (await isLive(config.socketPath)) {
      throw new AgentError(
        'CONFLICT',
        `an agent is running on ${config.socketPath}: stop it first`,
        {
          field: '--socket',
        },
      )
    }
    const agent = new Agent({ config })
    await agent.start()
    const n = agent.listEndpoints().length
    await agent.stop({ purge: true })
    io.out(`removed ${n} endpoint(s), the services and the pins under ${config.bpffsRoot}\n`)
    return 0
  }
  const daemon = await startDaemon({ config })
  io.err(
    `membrane agent: API on ${daemon.socketPath}, metrics and UI on ${daemon.httpUrl} (token in ${daemon.webTokenFile}; browser: /ui?token=<token>)\n`,
  )
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      void daemon.stop().then(resolve)
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  return 0
}

type ClientOf = (flags: Flags) => AgentClient

async function endpointCmd(
  sub: string | undefined,
  rest: string[],
  io: CliIo,
  client: ClientOf,
  wantJson: (f: Flags) => boolean,
  json: (v: unknown) => number,
): Promise<number> {
  const table = (eps: EndpointView[]) =>
    io.out(
      renderTable(
        ['ID', 'ENDPOINT', 'IPV4', 'IDENTITY', 'LABELS', 'INTERFACE', 'HEALTH', 'ENFORCING'],
        eps.map((e) => [
          e.id,
          `${e.namespace}/${e.name}`,
          e.ipv4,
          e.identity ?? '-',
          formatLabels(e.labels),
          e.hostIfname,
          e.health,
          e.enforcing ? 'yes' : 'no',
        ]),
      ),
    )
  switch (sub) {
    case 'create': {
      const { flags } = parse(rest, {
        name: { type: 'string' },
        namespace: { type: 'string' },
        labels: { type: 'string' },
        interface: { type: 'string' },
        ip: { type: 'string' },
        'egress-bandwidth': { type: 'string' },
        'ingress-bandwidth': { type: 'string' },
      })
      const body = {
        name: need(flags, 'name'),
        ...(flags.namespace !== undefined ? { namespace: flags.namespace } : {}),
        labels: parseLabelList('--labels', (flags.labels as string | undefined) ?? ''),
        ...(flags.interface !== undefined ? { interface: flags.interface } : {}),
        ...(flags.ip !== undefined ? { ip: flags.ip } : {}),
        ...(flags['egress-bandwidth'] !== undefined
          ? { egressBandwidth: flags['egress-bandwidth'] }
          : {}),
        ...(flags['ingress-bandwidth'] !== undefined
          ? { ingressBandwidth: flags['ingress-bandwidth'] }
          : {}),
      }
      const out = await client(flags).post<{ endpoint: EndpointView; created: boolean }>(
        '/v1/endpoints',
        body,
      )
      if (wantJson(flags)) return json(out)
      table([out.endpoint])
      if (!out.created) io.err('endpoint already existed with this spec; nothing new was made\n')
      return 0
    }
    case 'list': {
      const { flags } = parse(rest, {})
      const eps = await client(flags).get<EndpointView[]>('/v1/endpoints')
      if (wantJson(flags)) return json(eps)
      table(eps)
      return 0
    }
    case 'get':
    case 'delete': {
      const { flags, positionals } = parse(rest, {}, 1)
      const path = `/v1/endpoints/${refPath(positionals[0], 'endpoint')}`
      const ep =
        sub === 'get'
          ? await client(flags).get<EndpointView>(path)
          : await client(flags).delete<EndpointView>(path)
      if (wantJson(flags)) return json(ep)
      if (sub === 'get') table([ep])
      else io.out(`deleted endpoint ${ep.namespace}/${ep.name}\n`)
      return 0
    }
    default:
      throw new UsageError('endpoint has: create, list, get, delete')
  }
}

async function serviceCmd(
  sub: string | undefined,
  rest: string[],
  io: CliIo,
  client: ClientOf,
  wantJson: (f: Flags) => boolean,
  json: (v: unknown) => number,
): Promise<number> {
  const table = (svcs: ServiceRecord[]) =>
    io.out(
      renderTable(
        ['ID', 'SERVICE', 'FRONTEND', 'ALGORITHM', 'BACKENDS'],
        svcs.map((s) => [
          s.id,
          s.key,
          `${s.vip}:${s.port}/${s.protocol}`,
          s.algorithm,
          s.backends.map((b) => `${b.address}:${b.port}`).join(', ') || '(none)',
        ]),
      ),
    )
  switch (sub) {
    case 'create': {
      const { flags } = parse(rest, {
        name: { type: 'string' },
        namespace: { type: 'string' },
        vip: { type: 'string' },
        port: { type: 'string' },
        'target-port': { type: 'string' },
        protocol: { type: 'string' },
        algorithm: { type: 'string' },
        selector: { type: 'string' },
        backends: { type: 'string' },
      })
      const body = {
        name: need(flags, 'name'),
        vip: need(flags, 'vip'),
        port: num(flags, 'port') ?? need(flags, 'port'),
        ...(flags.namespace !== undefined ? { namespace: flags.namespace } : {}),
        ...(flags['target-port'] !== undefined ? { targetPort: num(flags, 'target-port') } : {}),
        ...(flags.protocol !== undefined ? { protocol: String(flags.protocol).toUpperCase() } : {}),
        ...(flags.algorithm !== undefined ? { algorithm: flags.algorithm } : {}),
        ...(flags.selector !== undefined
          ? { selector: parseLabelList('--selector', flags.selector as string) }
          : {}),
        ...(flags.backends !== undefined
          ? {
              backends: String(flags.backends)
                .split(',')
                .map((b) => b.trim())
                .filter(Boolean),
            }
          : {}),
      }
      const svc = await client(flags).post<ServiceRecord>('/v1/services', body)
      if (wantJson(flags)) return json(svc)
      table([svc])
      return 0
    }
    case 'list': {
      const { flags } = parse(rest, {})
      const svcs = await client(flags).get<ServiceRecord[]>('/v1/services')
      if (wantJson(flags)) return json(svcs)
      table(svcs)
      return 0
    }
    case 'delete': {
      const { flags, positionals } = parse(rest, {}, 1)
      const svc = await client(flags).delete<ServiceRecord>(
        `/v1/services/${refPath(positionals[0], 'service')}`,
      )
      if (wantJson(flags)) return json(svc)
      io.out(`deleted service ${svc.key}\n`)
      return 0
    }
    default:
      throw new UsageError('service has: create, list, delete')
  }
}

interface PolicyView {
  key: string
  kind: string
  namespace?: string
  name: string
  importedAt: string
  document?: unknown
}

async function policyCmd(
  sub: string | undefined,
  rest: string[],
  io: CliIo,
  client: ClientOf,
  wantJson: (f: Flags) => boolean,
  json: (v: unknown) => number,
): Promise<number> {
  const table = (ps: PolicyView[]) =>
    io.out(
      renderTable(
        ['KIND', 'NAMESPACE', 'NAME', 'IMPORTED'],
        ps.map((p) => [p.kind, p.namespace ?? '-', p.name, p.importedAt]),
      ),
    )
  switch (sub) {
    case 'import': {
      const { flags } = parse(rest, { file: { type: 'string', short: 'f' } })
      const file = need(flags, 'file')
      let text: string
      try {
        text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8')
      } catch (error) {
        throw new AgentError('INVALID_INPUT', `cannot read ${file}: ${(error as Error).message}`, {
          field: '-f',
        })
      }
      const out = await client(flags).post<{ revision: number; policies: PolicyView[] }>(
        '/v1/policies',
        { text, source: file },
      )
      if (wantJson(flags)) return json(out)
      table(out.policies)
      io.out(
        `imported ${out.policies.length} polic${out.policies.length === 1 ? 'y' : 'ies'}, revision ${out.revision}\n`,
      )
      return 0
    }
    case 'get': {
      const { flags, positionals } = parse(rest, { namespace: { type: 'string' } }, 1)
      const ps = await client(flags).get<PolicyView[]>('/v1/policies')
      const name = positionals[0]
      const chosen = name
        ? ps.filter(
            (p) =>
              p.name === name && (flags.namespace === undefined || p.namespace === flags.namespace),
          )
        : ps
      if (name && chosen.length === 0) {
        throw new AgentError('NOT_FOUND', `policy ${name} not found`, { field: 'name' })
      }
      if (wantJson(flags)) return json(chosen)
      table(chosen)
      return 0
    }
    case 'delete': {
      const { flags, positionals } = parse(
        rest,
        { namespace: { type: 'string' }, kind: { type: 'string' } },
        1,
      )
      const name = positionals[0]
      if (!name) throw new UsageError('policy delete needs a NAME')
      const q = new URLSearchParams({ name })
      if (typeof flags.namespace === 'string') q.set('namespace', flags.namespace)
      if (typeof flags.kind === 'string') q.set('kind', flags.kind)
      const out = await client(flags).delete<{ revision: number; deleted: PolicyView[] }>(
        `/v1/policies?${q}`,
      )
      if (wantJson(flags)) return json(out)
      io.out(`deleted ${out.deleted.map((p) => p.key).join(', ')}, revision ${out.revision}\n`)
      return 0
    }
    case 'trace': {
      const { flags } = parse(rest, {
        from: { type: 'string' },
        to: { type: 'string' },
        port: { type: 'string' },
        protocol: { type: 'string' },
        'http-method': { type: 'string' },
        'http-path': { type: 'string' },
      })
      const body = {
        from: refPath(need(flags, 'from'), '--from'),
        to: refPath(need(flags, 'to'), '--to'),
        port: num(flags, 'port') ?? need(flags, 'port'),
        protocol: String(flags.protocol ?? 'TCP').toUpperCase(),
        ...(flags['http-method'] !== undefined || flags['http-path'] !== undefined
          ? { http: { method: flags['http-method'] ?? 'GET', path: flags['http-path'] ?? '/' } }
          : {}),
      }
      const out = await client(flags).post<{ verdict: string; explanation: string[] }>(
        '/v1/policy/trace',
        body,
      )
      if (wantJson(flags)) return json(out)
      io.out(`verdict: ${out.verdict}\n`)
      for (const line of out.explanation) io.out(`  ${line}\n`)
      return out.verdict === 'allowed' ? 0 : 3
    }
    default:
      throw new UsageError('policy has: import, get, delete, trace')
  }
}

function writerOf(fn: (t: string) => void): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      fn(chunk.toString())
      callback()
    },
  })
}

async function observeCmd(args: string[], io: CliIo): Promise<number> {
  // The flags are @membrane/flows' (hubble observe's); --socket picks the agent.
  const rest: string[] = []
  let socket = DEFAULT_SOCKET
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    if (a === '--socket') {
      const v = args[++i]
      if (!v) throw new UsageError('--socket needs a path')
      socket = v
    } else if (a.startsWith('--socket=')) socket = a.slice('--socket='.length)
    else rest.push(a)
  }
  const abort = new AbortController()
  const onInt = () => abort.abort()
  process.once('SIGINT', onInt)
  try {
    return await runObserve(rest, {
      target: `unix://${observerSocketFor(socket)}`,
      signal: abort.signal,
      stdout: io === defaultIo ? process.stdout : writerOf(io.out),
      stderr: io === defaultIo ? process.stderr : writerOf(io.err),
    })
  } finally {
    process.off('SIGINT', onInt)
  }
}

/** The fields of a flow the compact format prints. */
export interface FlowLike {
  time?: string
  verdict?: string
  source?: { namespace?: string; podName?: string; identity?: number }
  destination?: { namespace?: string; podName?: string; identity?: number }
  IP?: { source?: string; destination?: string }
  l4?: {
    TCP?: { sourcePort?: number; destinationPort?: number }
    UDP?: { sourcePort?: number; destinationPort?: number }
  }
  dropReasonDesc?: string
  summary?: string
}

/** One flow as `hubble observe` prints it: time, source -> destination, verdict, summary. */
export function formatFlowLine(f: FlowLike): string {
  const who = (e: FlowLike['source'], ip: string | undefined, port: number | undefined) =>
    `${e?.podName ? `${e.namespace}/${e.podName}` : (ip ?? '?')}${port ? `:${port}` : ''}`
  const l4 = f.l4?.TCP ?? f.l4?.UDP
  const parts = [
    f.time ?? '',
    who(f.source, f.IP?.source, l4?.sourcePort),
    '->',
    who(f.destination, f.IP?.destination, l4?.destinationPort),
    f.verdict ?? '',
    f.dropReasonDesc ? `(${f.dropReasonDesc})` : '',
    f.summary ?? '',
  ]
  return parts.filter(Boolean).join(' ')
}
