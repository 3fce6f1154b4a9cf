/**
 * Socket-level load balancing for IPv4 and IPv6 on one host: a client process in a cgroup
 * connects to a ClusterIP whose backend is a loopback server; the programs translate at
 * connect()/sendmsg() and back at getpeername()/recvmsg(), so the client only sees the ClusterIP.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import {
  describeKernel,
  ensureCgroup2,
  findMount,
  freePort,
  killAndWait,
  tempBpffsDir,
  tempCgroup,
} from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Datapath } from '../src'
import { buildObjects } from './_btf'
import { CLIENT, SERVER } from './_topology'

describeKernel('socket LB, IPv4 and IPv6', ['root', 'bpf', 'bpffs', 'cgroup2', 'clang'], () => {
  let dp: Datapath
  let pins: { path: string; remove(): void }
  let cg: { path: string; remove(): void }
  let server: ReturnType<typeof spawn>
  let tcpPort = 0
  let udpPort = 0

  beforeAll(async () => {
    buildObjects()
    pins = tempBpffsDir()
    dp = await Datapath.open({ pinRoot: pins.path })
    const root = ['/sys/fs/cgroup', findMount('cgroup2') ?? '', ensureCgroup2()].find(
      (p) => p && existsSync(join(p, 'cgroup.procs')),
    )
    cg = tempCgroup(root)
    await dp.attachSocketLb(cg.path)
    tcpPort = await freePort()
    udpPort = await freePort()
    server = spawn(process.execPath, [SERVER, 'lo', String(tcpPort), String(udpPort)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    await new Promise<void>((resolve) =>
      server.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()),
    )
    dp.services.upsert({
      address: '10.96.214.1',
      port: 80,
      backends: [{ address: '127.0.0.1', port: tcpPort }],
    })
    dp.services.upsert({
      address: 'fd00:96::214',
      port: 80,
      backends: [{ address: '::1', port: tcpPort }],
    })
    dp.services.upsert({
      address: '10.96.214.1',
      port: 53,
      protocol: 'UDP',
      backends: [{ address: '127.0.0.1', port: udpPort }],
    })
    dp.services.upsert({
      address: 'fd00:96::214',
      port: 53,
      protocol: 'UDP',
      backends: [{ address: '::1', port: udpPort }],
    })
  })

  afterAll(async () => {
    if (server) await killAndWait(server)
    await dp?.close()
    cg?.remove()
    pins?.remove()
  })

  /** Run the client inside the cgroup (it moves itself in before exec). */
  async function inCgroup<T>(args: string[]): Promise<T> {
    const child = spawn(
      'sh',
      [
        '-c',
        'echo $$ > "$1/cgroup.procs" && shift && exec "$@"',
        'sh',
        cg.path,
        process.execPath,
        CLIENT,
        ...args,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    let out = ''
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
    })
    await new Promise((resolve) => child.once('exit', resolve))
    return JSON.parse(out.trim()) as T
  }

  for (const vip of ['10.96.214.1', 'fd00:96::214']) {
    it(`TCP to ${vip}: connected to the loopback backend, getpeername says the ClusterIP`, async () => {
      const r = await inCgroup<{ replies: string[]; remotes: string[] }>([
        'tcp',
        vip,
        '80',
        '2',
        '3000',
      ])
      expect(r.replies).toEqual([`lo:${tcpPort}`, `lo:${tcpPort}`])
      expect(r.remotes).toEqual([`${vip}:80`, `${vip}:80`])
    })

    it(`UDP to ${vip}: sendmsg translates, recvmsg reports the ClusterIP as the sender`, async () => {
      const r = await inCgroup<{ reply: string; from: string }>(['udp', vip, '53', '3000'])
      expect(r).toEqual({ reply: `lo:${udpPort}`, from: `${vip}:53` })
    })
  }
})
