import { type ChildProcess, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { type NetNamespace, type TestNetwork, workloadNamespace } from '@membrane/test-utils'
import type { Datapath } from '../src'

export const SERVER = fileURLToPath(new URL('./fixtures/server.cjs', import.meta.url))
export const CLIENT = fileURLToPath(new URL('./fixtures/client.cjs', import.meta.url))

export interface Workload {
  ns: NetNamespace
  ip: string
  hostIf: string
  /** eth0's MAC; read from the namespace when absent. */
  mac?: string
  id: number
  identity: number
}

/**
 * A workload namespace wired like a Membrane endpoint: eth0 with a /32 address, default route
 * via a link-local gateway whose MAC is the host-side veth's, a /32 route on the host, and
 * forwarding on the host-side veth. With `datapath`, the endpoint is attached and its address
 * written to the ipcache.
 */
export async function workload(
  net: TestNetwork,
  ip: string,
  id: number,
  identity: number,
  datapath?: Datapath,
): Promise<Workload> {
  const { ns, hostIf, mac } = await workloadNamespace(net, ip)
  const w = { ns, ip, hostIf, mac, id, identity }
  if (datapath) await attach(datapath, w)
  return w
}

/** Attach a workload's endpoint programs and write its ipcache entry. */
export async function attach(datapath: Datapath, w: Workload): Promise<void> {
  await datapath.attachEndpoint({
    id: w.id,
    ifname: w.hostIf,
    ip: w.ip,
    mac: w.mac ?? (await w.ns.exec('cat', ['/sys/class/net/eth0/address'])).stdout.trim(),
    identity: w.identity,
  })
  datapath.ipcache.upsert(`${w.ip}/32`, w.identity)
}

/** Start the fixture server in a workload and wait until it listens. */
export async function startServer(
  w: Workload,
  name: string,
  tcpPorts: number[],
  udpPort?: number,
): Promise<ChildProcess> {
  const child = w.ns.spawn(process.execPath, [
    SERVER,
    name,
    tcpPorts.join(','),
    ...(udpPort ? [String(udpPort)] : []),
  ])
  await waitForOutput(child, 'ready', `server ${name}`)
  return child
}

/**
 * Wait until a child prints `text` on stdout (or on stderr with `stream: 'stderr'`, e.g.
 * tcpdump's "listening on"); rejects after `ms` or when the child exits first.
 */
export function waitForOutput(
  child: ChildProcess,
  text: string,
  what: string,
  options: { stream?: 'stdout' | 'stderr'; ms?: number } = {},
): Promise<void> {
  const stream = options.stream === 'stderr' ? child.stderr : child.stdout
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start`)), options.ms ?? 10_000)
    stream?.on('data', (d: Buffer) => {
      if (d.toString().includes(text)) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => reject(new Error(`${what} exited ${code}`)))
  })
}

/** Run the fixture client in a workload and parse its JSON line. */
export async function client<T>(w: Workload, args: string[]): Promise<T> {
  const { stdout } = await w.ns.exec(process.execPath, [CLIENT, ...args])
  return JSON.parse(stdout.trim().split('\n').pop() as string) as T
}

/** A datapath running in its own process inside a network namespace (test/fixtures/datapath-node.ts). */
export interface NodeDatapath {
  send<T = undefined>(cmd: object): Promise<T>
  close(): Promise<void>
}

/** Start test/fixtures/datapath-node.ts inside `ns` and talk to it line by line. */
export function startNodeDatapath(ns: NetNamespace): NodeDatapath {
  const tsx = createRequire(import.meta.url).resolve('tsx')
  const script = fileURLToPath(new URL('./fixtures/datapath-node.ts', import.meta.url))
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns.name,
      process.execPath,
      '--conditions=@membrane/source',
      '--import',
      tsx,
      script,
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    },
  )
  let pending: ((line: string) => void) | undefined
  let buf = ''
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    let i = buf.indexOf('\n')
    while (i >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      pending?.(line)
      i = buf.indexOf('\n')
    }
  })
  child.once('exit', (code) => pending?.(`error: datapath process exited with ${code}`))
  const send = <T>(cmd: object) =>
    new Promise<T>((resolve, reject) => {
      pending = (line) => {
        if (line === 'ok') resolve(undefined as T)
        else if (line.startsWith('ok ')) resolve(JSON.parse(line.slice(3)) as T)
        else reject(new Error(`datapath node: ${line}`))
      }
      child.stdin?.write(`${JSON.stringify(cmd)}\n`)
    })
  return {
    send,
    async close() {
      if (child.exitCode !== null) return
      await send({ cmd: 'close' }).catch(() => {})
      await new Promise((resolve) =>
        child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve),
      )
    },
  }
}
