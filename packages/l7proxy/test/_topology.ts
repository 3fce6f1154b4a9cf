/**
 * Namespaces wired like Membrane endpoints (as the datapath's own tests do): eth0 with a /32,
 * a default route via a link-local gateway answered by the host-side veth's MAC, a /32 route on
 * the host and forwarding on the host-side veth.
 */
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { type NetNamespace, run, type TestNetwork } from '@membrane/test-utils'

const GATEWAY = '169.254.1.1'
export const HTTP_SERVER = fileURLToPath(new URL('./fixtures/http-server.cjs', import.meta.url))
export const RESOLVE = fileURLToPath(new URL('./fixtures/resolve.cjs', import.meta.url))
export const KAFKA_BROKER = fileURLToPath(new URL('./fixtures/kafka-broker.ts', import.meta.url))
export const KAFKA_PRODUCE = fileURLToPath(new URL('./fixtures/kafka-produce.cjs', import.meta.url))
/** tsx's loader, for running TypeScript fixtures in namespaces. */
export const TSX = createRequire(import.meta.url).resolve('tsx')

export interface Workload {
  ns: NetNamespace
  ip: string
  hostIf: string
  mac: string
}

export async function workload(net: TestNetwork, ip: string): Promise<Workload> {
  const ns = await net.namespace()
  const pair = await net.veth({ nsB: ns, nameB: 'eth0' })
  const hostMac = readFileSync(`/sys/class/net/${pair.a}/address`, 'utf8').trim()
  await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1'])
  await ns.exec('ip', ['addr', 'add', `${ip}/32`, 'dev', 'eth0'])
  await ns.exec('ip', ['route', 'add', GATEWAY, 'dev', 'eth0', 'scope', 'link'])
  await ns.exec('ip', ['route', 'add', 'default', 'via', GATEWAY, 'dev', 'eth0'])
  await ns.exec('ip', [
    'neigh',
    'replace',
    GATEWAY,
    'lladdr',
    hostMac,
    'dev',
    'eth0',
    'nud',
    'permanent',
  ])
  await run('sysctl', ['-qw', `net.ipv6.conf.${pair.a}.disable_ipv6=1`])
  await run('ip', ['route', 'add', `${ip}/32`, 'dev', pair.a])
  await run('sysctl', ['-qw', `net.ipv4.conf.${pair.a}.forwarding=1`])
  const mac = (await ns.exec('cat', ['/sys/class/net/eth0/address'])).stdout.trim()
  return { ns, ip, hostIf: pair.a, mac }
}

/** Start a long-running program in a workload and wait for `ready` on its stdout. */
export async function startReady(w: Workload, file: string, args: string[]): Promise<ChildProcess> {
  const child = w.ns.spawn(file, args)
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start: ${out}`)), 10_000)
    child.stdout?.on('data', (d: Buffer) => {
      out += d
      if (out.includes('ready')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.stderr?.on('data', (d: Buffer) => {
      out += d
    })
    child.once('exit', (code) => reject(new Error(`${file} exited ${code}: ${out}`)))
  })
  return child
}
