// The Star Wars demo (`npm run demo`): an agent with embedded defaults, a deathstar service with
// two backends, a tiefighter and an xwing — each a real HTTP server or client in its own network
// namespace — and three steps: no policy, an L3/L4 policy, an L7 policy. Every result below
// comes from a real request; when a component cannot enforce a step, the demo says so.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  AgentClient,
  type AgentDaemon,
  type AgentStatus,
  type EndpointView,
  type FlowLike,
  formatFlowLine,
  type ServiceRecord,
  startDaemon,
} from '@membrane/agent'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const jsonOut = args.includes('--json')
// --hold: after the steps keep the agent (and its web UI) up until stdin closes or Ctrl-C, so the
// page can be looked at (and tested) with the scenario's flows in it.
const hold = args.includes('--hold')
// --audit: step 2's L3/L4 policy is imported in audit mode (annotation policy.membrane.io/audit):
// the xwing lands, and the flows report the drop that policy would have made, by name.
const auditMode = args.includes('--audit')
const unknown = args.filter((a) => a !== '--json' && a !== '--hold' && a !== '--audit')
if (unknown.length > 0) {
  process.stderr.write(
    `star-wars demo: unknown argument ${unknown[0]} (known: --json, --hold, --audit)\n`,
  )
  process.exit(2)
}

/** One request of the demo and what came back. */
interface StepResult {
  step: number
  from: string
  request: string
  result: 'allowed' | 'denied'
  detail: {
    expected: 'allowed' | 'denied'
    enforced: boolean
    outcome: string
    status?: number
    body?: string
    backend?: string
    target: string
    ms: number
    note?: string
  }
}

// A closed pipe (`npm run demo | head`) must not skip the cleanup.
process.stdout.on('error', () => {})
const say = (text: string) => {
  if (!jsonOut) process.stdout.write(text)
}

const children = new Set<ChildProcess>()
let daemon: AgentDaemon | undefined
let workDir: string | undefined
let cleaning: Promise<void> | undefined

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of children) c.kill('SIGKILL')
    children.clear()
    if (daemon) await daemon.stop({ purge: true }).catch(() => {})
    if (workDir) rmSync(workDir, { recursive: true, force: true })
  })()
  return cleaning
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nstar-wars demo: ${sig}, cleaning up...\n`)
    void cleanup().then(() => process.exit(130))
  })
}

function spawnIn(netns: string, script: string, scriptArgs: string[]): ChildProcess {
  const child = spawn(
    'ip',
    ['netns', 'exec', netns, process.execPath, join(here, script), ...scriptArgs],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

function waitReady(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${what} did not start within 10 s`)), 10_000)
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      if (out.includes('ready')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited with ${code}`))
    })
  })
}

interface ShipAnswer {
  status?: number
  body?: string
  instance?: string
  error?: string
  ms: number
}

function ship(netns: string, method: string, url: string): Promise<ShipAnswer> {
  return new Promise((resolve, reject) => {
    const child = spawnIn(netns, 'ship.mjs', [method, url, '1500'])
    let out = ''
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
    })
    child.once('exit', () => {
      try {
        resolve(JSON.parse(out.trim()) as ShipAnswer)
      } catch {
        reject(new Error(`ship in ${netns} printed ${JSON.stringify(out)}`))
      }
    })
  })
}

async function main(): Promise<number> {
  const started = Date.now()
  workDir = mkdtempSync(join(tmpdir(), 'membrane-star-wars-'))
  const tag = process.pid.toString(36).slice(-3)
  daemon = await startDaemon({
    config: {
      prefix: `sw${tag}`,
      stateDir: join(workDir, 'state'),
      socketPath: join(workDir, 'membrane.sock'),
      bpffsRoot: `/sys/fs/bpf/membrane-star-wars-${process.pid}`,
      // A pool of its own per run, so two demos (or a demo and a test) never share addresses.
      ipamPool: `10.212.${process.pid % 256}.0/24`,
      metricsPort: 0,
      proxyPort: 0,
      kvstore: { type: 'memory' },
      logLevel: 'error',
      nodeName: 'star-wars',
    },
  })
  const client = new AgentClient(daemon.socketPath)
  say(
    `Membrane agent up (prefix ${daemon.agent.config.prefix}): API ${daemon.socketPath}, UI ${daemon.uiLoginUrl}\n`,
  )

  const create = async (name: string, labels: Record<string, string>) =>
    (await client.post<{ endpoint: EndpointView }>('/v1/endpoints', { name, labels })).endpoint
  const ds1 = await create('deathstar-1', { org: 'empire', class: 'deathstar' })
  const ds2 = await create('deathstar-2', { org: 'empire', class: 'deathstar' })
  const tiefighter = await create('tiefighter', { org: 'empire', class: 'tiefighter' })
  const xwing = await create('xwing', { org: 'alliance', class: 'xwing' })
  await Promise.all(
    [ds1, ds2].map((ep) =>
      waitReady(spawnIn(ep.netns!, 'deathstar.mjs', ['80', ep.name]), ep.name),
    ),
  )
  const svc = await client.post<ServiceRecord>('/v1/services', {
    name: 'deathstar',
    vip: '10.96.0.10',
    port: 80,
    algorithm: 'maglev',
    selector: { org: 'empire', class: 'deathstar' },
  })
  const status = await client.get<AgentStatus>('/v1/status')
  const lbWorks = status.components.datapath?.state === 'ok'
  const target = lbWorks ? `${svc.vip}:${svc.port}` : `${ds1.ipv4}:80`
  const targetNote = lbWorks
    ? undefined
    : `datapath not loaded: no service load balancing, request sent to backend ${ds1.name} directly`

  say('\nEndpoints\n')
  for (const ep of await client.get<EndpointView[]>('/v1/endpoints')) {
    say(
      `  ${ep.name.padEnd(12)} ${ep.ipv4.padEnd(12)} identity ${String(ep.identity ?? '-').padEnd(6)} ${Object.entries(
        ep.labels,
      )
        .map(([k, v]) => `${k}=${v}`)
        .join(',')}\n`,
    )
  }
  say(
    `Service deathstar ${svc.vip}:${svc.port} (${svc.algorithm}) -> ${svc.backends.map((b) => b.address).join(', ')}\n`,
  )
  if (targetNote) say(`  NOTE: ${targetNote}\n`)

  const results: StepResult[] = []
  const request = async (
    step: number,
    from: EndpointView,
    method: string,
    path: string,
    expected: 'allowed' | 'denied',
    enforced: boolean,
    note?: string,
  ) => {
    const a = await ship(from.netns!, method, `http://${target}${path}`)
    const allowed = a.status !== undefined && a.status !== 403
    const outcome =
      a.status !== undefined
        ? `${a.status} ${a.body ?? ''}`.trim()
        : a.error === 'timeout'
          ? 'no answer (dropped)'
          : `connection failed (${a.error})`
    results.push({
      step,
      from: from.name,
      request: `${method} ${path}`,
      result: allowed ? 'allowed' : 'denied',
      detail: {
        expected,
        enforced,
        outcome,
        ...(a.status !== undefined ? { status: a.status } : {}),
        ...(a.body !== undefined ? { body: a.body } : {}),
        ...(a.instance ? { backend: a.instance } : {}),
        target,
        ms: a.ms,
        ...(note || targetNote ? { note: [note, targetNote].filter(Boolean).join('; ') } : {}),
      },
    })
  }

  const importPolicy = async (
    file: string,
    audit = false,
  ): Promise<{ enforced: boolean; note?: string }> => {
    let text = readFileSync(join(here, '..', 'policies', file), 'utf8')
    if (audit)
      text = text.replace(
        /^metadata:\n/m,
        'metadata:\n  annotations:\n    policy.membrane.io/audit: "true"\n',
      )
    try {
      await client.post('/v1/policies', { text, source: file })
    } catch (error) {
      return { enforced: false, note: `policy not imported: ${(error as Error).message}` }
    }
    const s = await client.get<AgentStatus>('/v1/status')
    if (s.components.datapath?.state !== 'ok') {
      return { enforced: false, note: 'policy imported but NOT enforced: datapath not loaded' }
    }
    return { enforced: true }
  }

  say('\nStep 1: no policy — every ship may land\n')
  await request(1, tiefighter, 'POST', '/v1/request-landing', 'allowed', true)
  await request(1, xwing, 'POST', '/v1/request-landing', 'allowed', true)

  say(
    auditMode
      ? 'Step 2: L3/L4 policy in AUDIT mode — what it would deny is reported, and passes\n'
      : 'Step 2: L3/L4 policy — only org=empire may reach deathstar on 80/TCP\n',
  )
  const l4 = await importPolicy('sw_l3_l4_policy.yaml', auditMode)
  await request(2, tiefighter, 'POST', '/v1/request-landing', 'allowed', l4.enforced, l4.note)
  await request(
    2,
    xwing,
    'POST',
    '/v1/request-landing',
    auditMode ? 'allowed' : 'denied',
    l4.enforced,
    l4.note,
  )

  say('Step 3: L7 policy — only POST /v1/request-landing\n')
  const l7 = await importPolicy('sw_l3_l4_l7_policy.yaml')
  const proxyOk = (await client.get<AgentStatus>('/v1/status')).components.l7proxy?.state === 'ok'
  const l7enforced = l7.enforced && proxyOk
  const l7note = l7.note ?? (proxyOk ? undefined : 'L7 rules NOT enforced: L7 proxy not running')
  await request(3, tiefighter, 'POST', '/v1/request-landing', 'allowed', l7enforced, l7note)
  await request(3, tiefighter, 'PUT', '/v1/exhaust-port', 'denied', l7enforced, l7note)

  say('\n')
  say(
    table(
      ['STEP', 'FROM', 'REQUEST', 'RESULT', 'EXPECTED', 'OUTCOME'],
      results.map((r) => [
        String(r.step),
        r.from,
        r.request,
        r.result,
        r.detail.enforced ? r.detail.expected : `${r.detail.expected} (not enforced)`,
        r.detail.outcome,
      ]),
    ),
  )
  const notes = [...new Set(results.map((r) => r.detail.note).filter(Boolean))]
  for (const n of notes) say(`NOTE: ${n}\n`)

  // Flows: what the datapath and the proxy reported for these requests.
  const audits: Array<{ from: string; to: string; wouldBeDeniedBy: string[] }> = []
  try {
    const flows: FlowLike[] = []
    const s = client.stream('/v1/flows?last=1000&protocol=tcp', (f) => flows.push(f as FlowLike))
    await s.done
    // One line per distinct event (a packet is reported at each observation point).
    const lines: string[] = []
    let last = ''
    for (const f of flows) {
      if (f.verdict === 'AUDIT') {
        const by = [...(f.ingressDeniedBy ?? []), ...(f.egressDeniedBy ?? [])]
        audits.push({
          from: f.source?.podName ?? f.IP?.source ?? '?',
          to: f.destination?.podName ?? f.IP?.destination ?? '?',
          wouldBeDeniedBy: by.map((p) => (p.namespace ? `${p.namespace}/${p.name}` : p.name)),
        })
      }
      const { time, ...rest } = f
      const line = formatFlowLine(rest)
      if (line === last) continue
      last = line
      lines.push(`${time?.slice(11, 23) ?? ''} ${line}`)
    }
    say(`\nFlows (${lines.length} distinct TCP events of ${flows.length} flow records)\n`)
    for (const l of lines) say(`  ${l}\n`)
  } catch (error) {
    say(`\nFlows: unavailable (${(error as Error).message})\n`)
  }

  const mismatched = results.filter((r) => r.detail.enforced && r.result !== r.detail.expected)
  say(`\nDone in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  say(mismatched.length ? `; ${mismatched.length} result(s) differ from the expectation\n` : '\n')
  if (jsonOut) {
    process.stdout.write(
      `${JSON.stringify({ steps: results.map((r) => ({ step: r.step, from: r.from, request: r.request, result: r.result, detail: r.detail })), ...(auditMode ? { audits } : {}), ...(hold ? { ui: daemon.uiLoginUrl } : {}) })}\n`,
    )
  }
  if (hold) {
    say(`\nHolding: the UI stays at ${daemon.uiLoginUrl} until stdin closes or Ctrl-C\n`)
    await new Promise<void>((resolve) => {
      process.stdin.once('end', resolve).once('close', resolve).resume()
    })
  }
  return mismatched.length ? 1 : 0
}

function table(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows]
  const widths = headers.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  return `${all
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`
}

main()
  .then(async (code) => {
    await cleanup()
    process.exit(code)
  })
  .catch(async (error: unknown) => {
    process.stderr.write(`star-wars demo failed: ${(error as Error).stack ?? String(error)}\n`)
    await cleanup()
    process.exit(1)
  })
