import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import { OBSERVE_USAGE, ObserveUsageError, parseObserveArgs, runObserve } from '@membrane/flows'
import { parseRequestHeaderLines } from '@membrane/policy'
import { Agent, type AgentStatus, type EndpointView } from './agent'
import { isLive } from './api'
import { AgentClient, DEFAULT_SOCKET } from './client'
import { type AgentConfig, defaultConfig, loadConfig } from './config'
import { observerSocketFor, startDaemon } from './daemon'
import { AgentError } from './errors'
import { parseLabelList } from './internal/names'
import { explainCell, type ProbeResult, renderProbe } from './internal/probe'
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

/** A usage error: exit code 2, and a pointer to the command's help. */
class UsageError extends Error {}

/**
 * The exit codes of `membrane` (and of `membrane-policy`): the README's CLI section documents
 * the same table.
 */
const EXIT = {
  /** Done; `policy trace`: allowed. */
  OK: 0,
  /** The agent refused or failed (not found, conflict, no agent on the socket, ...). */
  FAILED: 1,
  /** Bad usage or bad input (flags, arguments, a file, a request the agent calls invalid). */
  USAGE: 2,
  /** `policy trace`: denied; `policy probe`: measured and predicted differ. */
  DENIED: 3,
} as const

type Flags = Record<string, string | boolean | string[] | undefined>
type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>

/** What a command's `run` gets besides its arguments. */
interface Ctx {
  io: CliIo
  /** A client of the agent on `--socket` (default {@link DEFAULT_SOCKET}). */
  client(flags: Flags): AgentClient
  /** Print `value` as JSON under `-o json`, else call `table`; exit 0. */
  show(flags: Flags, value: unknown, table: () => void): number
}

/** One command of the `membrane` CLI. */
export interface CliCommand {
  /** The words after `membrane` that name it, e.g. `['endpoint', 'create']`. */
  readonly path: readonly string[]
  /** What follows the words in the usage line (arguments and flags). */
  readonly args: string
  /** One line: what it does. */
  readonly summary: string
  /** More help (flags, details) for `--help`. */
  readonly details?: string
  /** Full help text that replaces the generated one (observe: hubble's flags). */
  readonly help?: () => string
  run(args: string[], ctx: Ctx): Promise<number>
}

const GLOBAL_FLAGS = `Global flags:
  --socket PATH        the agent's API socket (default ${DEFAULT_SOCKET})
  -o, --output FORMAT  json or table (default table); under -o json an error is a JSON object
                       {"error":{"code","message"}} on stderr, stdout carries only results
  -h, --help           this help`

const EXIT_CODES = `Exit codes: ${EXIT.OK} ok (trace: allowed), ${EXIT.FAILED} the agent refused or failed, ${EXIT.USAGE} bad usage or input, ${EXIT.DENIED} trace: denied, probe: differences.`

function parse(
  args: string[],
  options: FlagSpec,
  positionals = 0,
): { flags: Flags; positionals: string[] } {
  try {
    const r = parseArgs({
      args,
      options: {
        ...options,
        socket: { type: 'string' },
        output: { type: 'string', short: 'o' },
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

/** The flags of `membrane agent` that set one configuration field each. */
const AGENT_CONFIG_FLAGS: readonly [
  flag: string,
  key: keyof AgentConfig,
  arg: string,
  what: string,
][] = [
  ['bpffs-root', 'bpffsRoot', 'DIR', 'bpffs directory of the pinned maps and programs'],
  ['state-dir', 'stateDir', 'DIR', 'directory of the desired state'],
  ['socket', 'socketPath', 'PATH', 'the API socket, root only'],
  ['ipam-pool', 'ipamPool', 'CIDR', 'endpoint addresses; the first one is the router'],
  ['metrics-port', 'metricsPort', 'N', 'port of the metrics and web UI, 0 for any free one'],
  ['metrics-address', 'metricsAddress', 'ADDR', 'address of the metrics and web UI'],
  ['log-level', 'logLevel', 'LEVEL', 'fatal, error, warn, info, debug, trace or silent'],
  ['prefix', 'prefix', 'NAME', 'starts every interface and namespace name, 1..6 chars'],
  ['proxy-port', 'proxyPort', 'N', 'port of the L7 proxy, 0 for any free one'],
  ['socket-lb-cgroups', 'socketLbCgroups', 'PATH,...', 'cgroups with socket-level LB'],
  ['node-name', 'nodeName', 'NAME', 'this node in flows and etcd keys'],
  ['node-ip', 'nodeIP', 'IPV4', "this node's underlay address (cluster tunnel endpoint)"],
  [
    'cluster-pool',
    'clusterPoolCidr',
    'CIDR',
    'join a cluster: pool of the pod CIDRs (kvstore etcd)',
  ],
  ['cluster-pool-mask', 'clusterPoolMaskSize', 'N', "length of each node's pod CIDR"],
  ['routing-mode', 'routingMode', 'MODE', 'tunnel or native, to other nodes'],
]

function agentFlagsHelp(): string {
  const defaults = defaultConfig()
  const rows: [string, string][] = [
    ['--config FILE', 'YAML or JSON configuration; flags override it'],
    ...AGENT_CONFIG_FLAGS.map(([flag, key, arg, what]): [string, string] => {
      const d = defaults[key]
      const shown = Array.isArray(d)
        ? d.length
          ? d.join(',')
          : 'none'
        : d === ''
          ? 'none'
          : String(d)
      return [`--${flag} ${arg}`, `${what} (default ${shown})`]
    }),
    ['--kvstore memory|etcd', 'where identities are allocated (default memory)'],
    ['--etcd-endpoints URL,...', 'etcd client URLs, with --kvstore etcd'],
  ]
  return `Flags:\n${columns(rows)}`
}

function agentConfig(args: string[]): AgentConfig {
  const { flags } = parse(args, {
    config: { type: 'string' },
    kvstore: { type: 'string' },
    'etcd-endpoints': { type: 'string' },
    ...Object.fromEntries(AGENT_CONFIG_FLAGS.map(([flag]) => [flag, { type: 'string' as const }])),
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
  return loadConfig({
    ...(typeof flags.config === 'string' ? { file: flags.config } : {}),
    flags: {
      ...Object.fromEntries(AGENT_CONFIG_FLAGS.map(([flag, key]) => [key, flags[flag]])),
      kvstore,
    },
  })
}

async function runAgent(args: string[], { io }: Ctx): Promise<number> {
  const config = agentConfig(args)
  // The handlers go in before the agent starts: a SIGTERM sent as soon as it says it is up (or
  // while it starts) is a graceful stop, never the default action's abrupt exit.
  let stopRequested = false
  let wake = () => {}
  const onSignal = () => {
    stopRequested = true
    wake()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    const daemon = await startDaemon({ config })
    io.err(
      `membrane agent: API on ${daemon.socketPath}, metrics and UI on ${daemon.httpUrl} (token in ${daemon.webTokenFile}; browser: /ui?token=<token>)\n`,
    )
    if (!stopRequested) await new Promise<void>((resolve) => (wake = resolve))
    await daemon.stop()
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  return EXIT.OK
}

async function runAgentCleanup(args: string[], { io }: Ctx): Promise<number> {
  const config = agentConfig(args)
  // Remove everything this agent configuration made: endpoints (namespaces, veths, programs,
  // map entries), services, pins, the host device. The state directory is emptied.
  if (await isLive(config.socketPath)) {
    throw new AgentError('CONFLICT', `an agent is running on ${config.socketPath}: stop it first`, {
      field: '--socket',
    })
  }
  const agent = new Agent({ config })
  await agent.start()
  const n = agent.listEndpoints().length
  await agent.stop({ purge: true })
  io.out(`removed ${n} endpoint(s), the services and the pins under ${config.bpffsRoot}\n`)
  return EXIT.OK
}

function endpointTable(io: CliIo, eps: EndpointView[]): void {
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
}

function serviceTable(io: CliIo, svcs: ServiceRecord[]): void {
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
}

interface PolicyView {
  key: string
  kind: string
  namespace?: string
  name: string
  importedAt: string
  document?: unknown
}

function policyTable(io: CliIo, ps: PolicyView[]): void {
  io.out(
    renderTable(
      ['KIND', 'NAMESPACE', 'NAME', 'IMPORTED'],
      ps.map((p) => [p.kind, p.namespace ?? '-', p.name, p.importedAt]),
    ),
  )
}

/** Every command of `membrane`: dispatch, `--help` at every level and the tests walk this. */
export const COMMANDS: readonly CliCommand[] = [
  {
    path: ['agent'],
    args: '[flags]',
    summary: 'run the agent (daemon) in the foreground; SIGTERM or SIGINT stop it gracefully',
    details: agentFlagsHelp(),
    run: runAgent,
  },
  {
    path: ['agent', 'cleanup'],
    args: '[flags]',
    summary: 'remove everything the agent made (stop the agent first); same flags as agent',
    details: agentFlagsHelp(),
    run: runAgentCleanup,
  },
  {
    path: ['status'],
    args: '',
    summary: 'components, kernel features, bandwidth mode, counts',
    async run(args, { io, client, show }) {
      const { flags } = parse(args, {})
      const s = await client(flags).get<AgentStatus>('/v1/status')
      return show(flags, s, () => {
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
      })
    },
  },
  {
    path: ['endpoint', 'create'],
    args: '--name N [--namespace NS] [--labels k=v,...] [--interface IF] [--ip IP] [--egress-bandwidth RATE] [--ingress-bandwidth RATE]',
    summary: 'a namespace + veth + address (or an existing interface), identity, policy',
    async run(args, { io, client, show }) {
      const { flags } = parse(args, {
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
      return show(flags, out, () => {
        endpointTable(io, [out.endpoint])
        if (!out.created) io.err('endpoint already existed with this spec; nothing new was made\n')
      })
    },
  },
  {
    path: ['endpoint', 'list'],
    args: '',
    summary: 'every endpoint with its address, identity, health',
    async run(args, { io, client, show }) {
      const { flags } = parse(args, {})
      const eps = await client(flags).get<EndpointView[]>('/v1/endpoints')
      return show(flags, eps, () => endpointTable(io, eps))
    },
  },
  {
    path: ['endpoint', 'get'],
    args: 'NS/NAME',
    summary: 'one endpoint (NAME alone is in namespace default)',
    async run(args, { io, client, show }) {
      const { flags, positionals } = parse(args, {}, 1)
      const ep = await client(flags).get<EndpointView>(
        `/v1/endpoints/${refPath(positionals[0], 'endpoint')}`,
      )
      return show(flags, ep, () => endpointTable(io, [ep]))
    },
  },
  {
    path: ['endpoint', 'delete'],
    args: 'NS/NAME',
    summary: 'remove an endpoint and everything made for it',
    async run(args, { io, client, show }) {
      const { flags, positionals } = parse(args, {}, 1)
      const ep = await client(flags).delete<EndpointView>(
        `/v1/endpoints/${refPath(positionals[0], 'endpoint')}`,
      )
      return show(flags, ep, () => io.out(`deleted endpoint ${ep.namespace}/${ep.name}\n`))
    },
  },
  {
    path: ['policy', 'import'],
    args: '-f FILE',
    summary: "validate and apply a file's documents atomically (all or none); '-' is stdin",
    async run(args, { io, client, show }) {
      const { flags } = parse(args, { file: { type: 'string', short: 'f' } })
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
      return show(flags, out, () => {
        policyTable(io, out.policies)
        const n = out.policies.length
        io.out(`imported ${n} polic${n === 1 ? 'y' : 'ies'}, revision ${out.revision}\n`)
      })
    },
  },
  {
    path: ['policy', 'get'],
    args: '[NAME] [--namespace NS]',
    summary: 'the imported policies, or the ones named NAME',
    async run(args, { io, client, show }) {
      const { flags, positionals } = parse(args, { namespace: { type: 'string' } }, 1)
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
      return show(flags, chosen, () => policyTable(io, chosen))
    },
  },
  {
    path: ['policy', 'delete'],
    args: 'NAME [--namespace NS] [--kind KIND]',
    summary: 'remove the policies named NAME',
    async run(args, { io, client, show }) {
      const { flags, positionals } = parse(
        args,
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
      return show(flags, out, () =>
        io.out(`deleted ${out.deleted.map((p) => p.key).join(', ')}, revision ${out.revision}\n`),
      )
    },
  },
  {
    path: ['policy', 'trace'],
    args: "--from NS/NAME --to NS/NAME --port N [--protocol TCP|UDP] [--http-method M --http-path P --http-host H --http-header 'Name: value'...] [--kafka-api-key K --kafka-api-version N --kafka-client-id C --kafka-topic T...] [--dns-name N]",
    summary: `would this connection be allowed? both directions, L7 too (exit ${EXIT.DENIED} when denied)`,
    async run(args, { io, client, show }) {
      const { flags } = parse(args, {
        from: { type: 'string' },
        to: { type: 'string' },
        port: { type: 'string' },
        protocol: { type: 'string' },
        'http-method': { type: 'string' },
        'http-path': { type: 'string' },
        'http-host': { type: 'string' },
        'http-header': { type: 'string', multiple: true },
        'kafka-api-key': { type: 'string' },
        'kafka-api-version': { type: 'string' },
        'kafka-client-id': { type: 'string' },
        'kafka-topic': { type: 'string', multiple: true },
        'dns-name': { type: 'string' },
      })
      const body: Record<string, unknown> = {
        from: refPath(need(flags, 'from'), '--from'),
        to: refPath(need(flags, 'to'), '--to'),
        port: num(flags, 'port') ?? need(flags, 'port'),
        protocol: String(flags.protocol ?? 'TCP').toUpperCase(),
      }
      const headerLines = (flags['http-header'] as string[] | undefined) ?? []
      if (
        flags['http-method'] !== undefined ||
        flags['http-path'] !== undefined ||
        flags['http-host'] !== undefined ||
        headerLines.length > 0
      ) {
        let headers: Record<string, string>
        try {
          headers = parseRequestHeaderLines(headerLines)
        } catch (error) {
          throw new UsageError((error as Error).message)
        }
        body.http = {
          method: flags['http-method'] ?? 'GET',
          path: flags['http-path'] ?? '/',
          ...(flags['http-host'] !== undefined ? { host: flags['http-host'] } : {}),
          headers,
        }
      }
      const apiKey = flags['kafka-api-key'] as string | undefined
      if (apiKey !== undefined) {
        body.kafka = {
          apiKey: /^[0-9]+$/.test(apiKey) ? Number(apiKey) : apiKey,
          ...(flags['kafka-api-version'] !== undefined
            ? { apiVersion: num(flags, 'kafka-api-version') }
            : {}),
          ...(flags['kafka-client-id'] !== undefined ? { clientID: flags['kafka-client-id'] } : {}),
          topics: (flags['kafka-topic'] as string[] | undefined) ?? [],
        }
      }
      if (flags['dns-name'] !== undefined) body.dns = { name: flags['dns-name'] }
      const out = await client(flags).post<{ verdict: string; explanation: string[] }>(
        '/v1/policy/trace',
        body,
      )
      show(flags, out, () => {
        io.out(`verdict: ${out.verdict}\n`)
        for (const line of out.explanation) io.out(`  ${line}\n`)
      })
      return out.verdict === 'allowed' ? EXIT.OK : EXIT.DENIED
    },
  },
  {
    path: ['policy', 'probe'],
    args: '[--from NS/NAME]... [--to NS/NAME]... [--ports N,...] [--timeout MS] [--retries N] [--concurrency N] [--deadline MS] [--predict-only] | --explain SRC DST:PORT',
    summary: `the endpoint x endpoint x port truth table: predicted by policy, measured with real connections (exit ${EXIT.DENIED} on differences)`,
    details: `Rows are sources, columns destination:port; a cell is the measured verdict (✓ reached, ✗ not,
L7 proxied with L7 rules enforced: a request the rules allow reaches the server, one they deny
gets the proxy's 403), marked ! with the predicted one where they differ. Ports default to the
ones the policies name for each destination (80 when none). Throwaway listeners run in the
destinations' namespaces for the probe. Bounds: --timeout per connection (default 1000 ms; a
timeout is tried --retries more times, default 1), --concurrency connections in flight
(default 32), --deadline for the whole probe (default 60000 ms; cells past it show …).
--explain prints one cell with the rules behind it.`,
    async run(args, { io, client, show }) {
      const { flags, positionals } = parse(
        args,
        {
          from: { type: 'string', multiple: true },
          to: { type: 'string', multiple: true },
          ports: { type: 'string' },
          timeout: { type: 'string' },
          retries: { type: 'string' },
          concurrency: { type: 'string' },
          deadline: { type: 'string' },
          'predict-only': { type: 'boolean' },
          explain: { type: 'boolean' },
        },
        2,
      )
      const body: Record<string, unknown> = {}
      const list = (name: string) => (flags[name] as string[] | undefined) ?? []
      if (flags.explain) {
        const [src, cell] = positionals
        const m = /^(.+):([0-9]{1,5})$/.exec(cell ?? '')
        if (!src || !m) throw new UsageError('--explain needs SRC DST:PORT')
        body.from = [refPath(src, 'SRC')]
        body.to = [refPath(m[1], 'DST')]
        body.ports = [Number(m[2])]
        body.explain = true
      } else {
        if (positionals.length > 0)
          throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`)
        if (list('from').length) body.from = list('from').map((r) => refPath(r, '--from'))
        if (list('to').length) body.to = list('to').map((r) => refPath(r, '--to'))
        if (flags.ports !== undefined) {
          const text = String(flags.ports)
          if (!/^[0-9]+(,[0-9]+)*$/.test(text))
            throw new UsageError(`--ports expects N,N,..., got ${JSON.stringify(text)}`)
          body.ports = text.split(',').map(Number)
        }
      }
      for (const [flag, field] of [
        ['timeout', 'timeoutMs'],
        ['retries', 'retries'],
        ['concurrency', 'concurrency'],
        ['deadline', 'deadlineMs'],
      ] as const) {
        const n = num(flags, flag)
        if (n !== undefined) body[field] = n
      }
      if (flags['predict-only']) body.measure = false
      const out = await client(flags).post<ProbeResult>('/v1/policy/probe', body)
      show(flags, out, () => {
        if (flags.explain) for (const c of out.cells) io.out(explainCell(c))
        else io.out(renderProbe(out))
      })
      return out.differences > 0 ? EXIT.DENIED : EXIT.OK
    },
  },
  {
    path: ['service', 'create'],
    args: '--name N --vip IP --port N [--namespace NS] [--target-port N] [--protocol TCP|UDP] [--algorithm random|maglev] [--selector k=v,...] [--backends a:p,...]',
    summary: 'a ClusterIP-style service over selected endpoints or listed backends',
    async run(args, { io, client, show }) {
      const { flags } = parse(args, {
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
      return show(flags, svc, () => serviceTable(io, [svc]))
    },
  },
  {
    path: ['service', 'list'],
    args: '',
    summary: 'every service with its frontend and backends',
    async run(args, { io, client, show }) {
      const { flags } = parse(args, {})
      const svcs = await client(flags).get<ServiceRecord[]>('/v1/services')
      return show(flags, svcs, () => serviceTable(io, svcs))
    },
  },
  {
    path: ['service', 'delete'],
    args: 'NS/NAME',
    summary: 'remove a service',
    async run(args, { io, client, show }) {
      const { flags, positionals } = parse(args, {}, 1)
      const svc = await client(flags).delete<ServiceRecord>(
        `/v1/services/${refPath(positionals[0], 'service')}`,
      )
      return show(flags, svc, () => io.out(`deleted service ${svc.key}\n`))
    },
  },
  {
    path: ['identity', 'list'],
    args: '',
    summary: 'identities with the endpoints using them',
    async run(args, { io, client, show }) {
      const { flags } = parse(args, {})
      const ids =
        await client(flags).get<{ id: number; labels: string[]; endpoints: string[] }[]>(
          '/v1/identities',
        )
      return show(flags, ids, () =>
        io.out(
          renderTable(
            ['ID', 'LABELS', 'ENDPOINTS'],
            ids.map((i) => [i.id, i.labels.join(' '), i.endpoints.join(', ')]),
          ),
        ),
      )
    },
  },
  {
    path: ['bpf', 'policy', 'get'],
    args: 'NS/NAME',
    summary: "the endpoint's BPF policy map, read back from the kernel",
    async run(args, { io, client, show }) {
      const { flags, positionals } = parse(args, {}, 1)
      const path = refPath(positionals[0], 'endpoint')
      const map = await client(flags).get<{ source: string; entries: Record<string, unknown>[] }>(
        `/v1/bpf/policy/${path}`,
      )
      return show(flags, map, () => {
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
      })
    },
  },
  {
    path: ['bpf', 'lb', 'list'],
    args: '',
    summary: 'the BPF service and backend maps',
    async run(args, { io, client, show }) {
      const { flags } = parse(args, {})
      const lb =
        await client(flags).get<{ frontend: string; backends: string[]; algorithm: string }[]>(
          '/v1/bpf/lb',
        )
      return show(flags, lb, () =>
        io.out(
          renderTable(
            ['FRONTEND', 'ALGORITHM', 'BACKENDS'],
            lb.map((s) => [s.frontend, s.algorithm, s.backends.join(', ')]),
          ),
        ),
      )
    },
  },
  {
    path: ['observe'],
    args: '[hubble observe flags]',
    summary: "flows from the agent's Observer, like hubble observe (--graph FILE: a service map)",
    help: () =>
      `${OBSERVE_USAGE}      --socket PATH          the agent's API socket; its observer socket is next to it\n`,
    run: observeCmd,
  },
  {
    path: ['monitor'],
    args: '',
    summary: 'agent actions and datapath events as they happen (NDJSON)',
    async run(args, { io, client }) {
      const { flags } = parse(args, {})
      const s = client(flags).stream('/v1/monitor', (e) => io.out(`${JSON.stringify(e)}\n`))
      process.once('SIGINT', () => s.close())
      await s.done
      return EXIT.OK
    },
  },
]

/** `rows` as two aligned columns, indented. */
function columns(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([a]) => a.length))
  return rows.map(([a, b]) => `  ${a.padEnd(width)}  ${b}\n`).join('')
}

const same = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((w, i) => w === b[i])
const startsWith = (path: readonly string[], words: readonly string[]) =>
  same(path.slice(0, words.length), words)

function topHelp(): string {
  return `membrane — the Membrane agent and its CLI

Usage: membrane <command> [flags]

Commands:
${columns(COMMANDS.map((c) => [c.path.join(' '), c.summary]))}
${GLOBAL_FLAGS}
  -V, --version        print the version of membrane

\`membrane <command> --help\` (or \`membrane help <command>\`) shows a command's flags.
${EXIT_CODES}
`
}

function commandHelp(c: CliCommand): string {
  if (c.help) return c.help()
  const subs = COMMANDS.filter((o) => o !== c && startsWith(o.path, c.path))
  return [
    `${usageLine(c)}\n\n${c.summary}\n`,
    ...(subs.length
      ? [`\nCommands:\n${columns(subs.map((o) => [o.path.join(' '), o.summary]))}`]
      : []),
    ...(c.details ? [`\n${c.details}`] : []),
    `\n${GLOBAL_FLAGS}\n\n${EXIT_CODES}\n`,
  ].join('')
}

/** Help of a word that only groups commands (`endpoint`, `bpf policy`). */
function groupHelp(words: readonly string[]): string {
  const subs = COMMANDS.filter((c) => startsWith(c.path, words))
  return `Usage: membrane ${words.join(' ')} <command> [flags]

Commands:
${columns(subs.map((c) => [c.path.join(' '), c.summary]))}
\`membrane ${words.join(' ')} <command> --help\` shows a command's flags.
`
}

/** `Usage: membrane <words> <args>`, the args wrapped at 100 columns under their first one. */
function usageLine(c: CliCommand): string {
  const head = `Usage: membrane ${c.path.join(' ')}`
  // Split the arguments on spaces outside brackets: `[--http-method M --http-path P]` is one.
  const parts: string[] = []
  let depth = 0
  let cur = ''
  for (const ch of c.args) {
    if (ch === ' ' && depth === 0) {
      if (cur) parts.push(cur)
      cur = ''
      continue
    }
    if (ch === '[') depth++
    if (ch === ']') depth--
    cur += ch
  }
  if (cur) parts.push(cur)
  const lines = [head]
  for (const p of parts) {
    const last = lines.length - 1
    const line = lines[last] as string
    if (line !== head && line.length + 1 + p.length > 100) {
      lines.push(`${' '.repeat(head.length)} ${p}`)
    } else lines[last] = `${lines[last]} ${p}`
  }
  return lines.join('\n')
}

function groupUsage(words: readonly string[]): UsageError {
  const next = [
    ...new Set(COMMANDS.filter((c) => startsWith(c.path, words)).map((c) => c.path[words.length])),
  ]
  return new UsageError(`${words.join(' ')} has: ${next.join(', ')}`)
}

/**
 * The command named by the leading words of `argv` (the longest path that matches), the words
 * that matched and the arguments after them. `command` is undefined when the words only name a
 * group (`endpoint`) or nothing.
 */
function resolve(argv: readonly string[]): {
  command: CliCommand | undefined
  words: string[]
  rest: string[]
} {
  const words: string[] = []
  for (const a of argv) {
    if (!COMMANDS.some((c) => startsWith(c.path, [...words, a]))) break
    words.push(a)
  }
  return {
    command: COMMANDS.find((c) => same(c.path, words)),
    words,
    rest: argv.slice(words.length),
  }
}

/** True when the arguments (up to a `--`) ask for help. */
function asksHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--')
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h')
}

/** True when the arguments ask for `-o json` (looked at before parsing, for errors in parsing). */
function asksJson(args: readonly string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === '--') return false
    if ((a === '-o' || a === '--output') && args[i + 1] === 'json') return true
    if (a === '-ojson' || a === '--output=json') return true
  }
  return false
}

/** This package's version: its package.json is beside src/ and dist/. */
const packageVersion = (): string =>
  (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as Pkg).version
type Pkg = { version: string }

/**
 * Run the `membrane` CLI with `argv` (without node and the script). Resolves with the exit code
 * ({@link EXIT}): 0 success, 1 the agent refused or failed, 2 bad usage or input, 3 `policy
 * trace` says denied. `--help` or `-h` after any command prints its usage and touches nothing.
 * Under `-o json` an error is `{"error":{"code","message"}}` on stderr.
 */
export async function runCli(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const json = asksJson(argv)
  const fail = (code: string, message: string, field?: string) => {
    if (json)
      io.err(`${JSON.stringify({ error: { code, message, ...(field ? { field } : {}) } })}\n`)
    else io.err(`membrane: ${message}${code === 'INTERNAL' ? '' : ` (${code})`}\n`)
  }
  try {
    return await dispatch(argv, io)
  } catch (error) {
    if (error instanceof UsageError) {
      if (json) fail('INVALID_INPUT', error.message)
      else io.err(`membrane: ${error.message}\nRun \`membrane help\` for usage.\n`)
      return EXIT.USAGE
    }
    if (error instanceof AgentError) {
      fail(error.code, error.message, error.field)
      return error.code === 'INVALID_INPUT' || error.code === 'TOO_LARGE' ? EXIT.USAGE : EXIT.FAILED
    }
    fail('INTERNAL', (error as Error).message)
    return EXIT.FAILED
  }
}

async function dispatch(argv: string[], io: CliIo): Promise<number> {
  const [first, ...after] = argv
  if (first === undefined || first === '--help' || first === '-h') {
    io.out(topHelp())
    return EXIT.OK
  }
  if (first === '--version' || first === '-V') {
    io.out(`membrane ${packageVersion()}\n`)
    return EXIT.OK
  }
  if (first === 'help') {
    const { command, words, rest } = resolve(after)
    if (rest.length) {
      throw words.length && !command
        ? groupUsage(words)
        : new UsageError(`unknown command ${JSON.stringify([...words, rest[0]].join(' '))}`)
    }
    io.out(command ? commandHelp(command) : words.length ? groupHelp(words) : topHelp())
    return EXIT.OK
  }
  const { command, words, rest } = resolve(argv)
  if (asksHelp(rest)) {
    if (!command && !words.length) throw new UsageError(`unknown command ${JSON.stringify(first)}`)
    io.out(command ? commandHelp(command) : groupHelp(words))
    return EXIT.OK
  }
  if (!command) {
    if (!words.length) throw new UsageError(`unknown command ${JSON.stringify(first)}`)
    throw groupUsage(words)
  }
  const wantJson = (flags: Flags) => flags.output === 'json'
  return command.run(rest, {
    io,
    client: (flags) => new AgentClient((flags.socket as string | undefined) ?? DEFAULT_SOCKET),
    show(flags, value, table) {
      if (wantJson(flags)) io.out(`${JSON.stringify(value, null, 2)}\n`)
      else table()
      return EXIT.OK
    },
  })
}

function writerOf(fn: (t: string) => void): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      fn(chunk.toString())
      callback()
    },
  })
}

async function observeCmd(args: string[], { io }: Ctx): Promise<number> {
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
  try {
    parseObserveArgs(rest) // usage errors as membrane's own (plain or JSON), before connecting
  } catch (error) {
    if (error instanceof ObserveUsageError) throw new UsageError(error.message)
    throw error
  }
  // Under -o json the observer's failure (it writes text) becomes one JSON error at the end.
  const json = asksJson(rest)
  let failure = ''
  const abort = new AbortController()
  const onInt = () => abort.abort()
  process.once('SIGINT', onInt)
  try {
    const code = await runObserve(rest, {
      target: `unix://${observerSocketFor(socket)}`,
      signal: abort.signal,
      stdout: io === defaultIo ? process.stdout : writerOf(io.out),
      stderr: json
        ? writerOf((t) => (failure += t))
        : io === defaultIo
          ? process.stderr
          : writerOf(io.err),
    })
    if (json && failure) {
      if (code === EXIT.OK) io.err(failure)
      else throw new AgentError('UNAVAILABLE', failure.trim().replace(/^membrane observe: /, ''))
    }
    return code
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
  /** The policies that decided the verdict (policy attribution). */
  egressAllowedBy?: PolicyLike[]
  ingressAllowedBy?: PolicyLike[]
  egressDeniedBy?: PolicyLike[]
  ingressDeniedBy?: PolicyLike[]
}

/** A policy named by a flow. */
export interface PolicyLike {
  name: string
  namespace?: string
}

const policyText = (list: PolicyLike[]) =>
  list.map((p) => (p.namespace ? `${p.namespace}/${p.name}` : p.name)).join(',')

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
  const allowed = f.egressAllowedBy ?? f.ingressAllowedBy
  const denied = f.egressDeniedBy ?? f.ingressDeniedBy
  if (allowed) parts.push(`[allowed by ${policyText(allowed)}]`)
  if (denied)
    parts.push(
      `[${f.verdict === 'AUDIT' ? 'would be denied by' : 'denied by'} ${policyText(denied)}]`,
    )
  return parts.filter(Boolean).join(' ')
}
