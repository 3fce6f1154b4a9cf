/**
 * Namespaces wired like Membrane endpoints (as the datapath's own tests do): eth0 with a /32,
 * a default route via a link-local gateway answered by the host-side veth's MAC, a /32 route on
 * the host and forwarding on the host-side veth.
 */
import type { ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { type NetNamespace, type TestNetwork, workloadNamespace } from '@membrane/test-utils'

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

/** A workload namespace wired like a Membrane endpoint (see test-utils workloadNamespace). */
export function workload(net: TestNetwork, ip: string): Promise<Workload> {
  return workloadNamespace(net, ip)
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
