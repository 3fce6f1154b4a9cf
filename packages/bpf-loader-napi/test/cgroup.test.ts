import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { describeKernel, ensureCgroup2, killAndWait, tempCgroup } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type BpfLink, BpfObject, type CgroupAttachType } from '../src/index'
import { reachableCgroup2, testObject, u32le } from './_helpers'

const HOOKS: Array<[CgroupAttachType, string, number]> = [
  ['connect4', 'on_connect4', 0],
  ['connect6', 'on_connect6', 1],
  ['sendmsg4', 'on_sendmsg4', 2],
  ['sendmsg6', 'on_sendmsg6', 3],
  ['recvmsg4', 'on_recvmsg4', 4],
  ['recvmsg6', 'on_recvmsg6', 5],
  ['getpeername4', 'on_getpeername4', 6],
  ['getpeername6', 'on_getpeername6', 7],
  ['sock_create', 'on_sock_create', 8],
]
const CONNECT4_B = 9

// Exercises every socket hook from inside the cgroup: UDP send/recv and TCP connect +
// getpeername over IPv4 and IPv6 loopback.
const CHILD = `
const dgram = require('node:dgram'), net = require('node:net')
const udp = (type, host) => new Promise((resolve, reject) => {
  const s = dgram.createSocket(type)
  s.on('error', reject)
  s.bind(0, host, () => {
    s.once('message', () => { s.close(); resolve() })
    s.send('x', s.address().port, host)
  })
})
const tcp = (host, port) => new Promise((resolve, reject) => {
  const c = net.connect(port, host, () => { void c.remoteAddress; c.end(); resolve() })
  c.on('error', reject)
})
process.stdin.once('data', async (line) => {
  const [p4, p6] = String(line).trim().split(' ').map(Number)
  try {
    await udp('udp4', '127.0.0.1'); await udp('udp6', '::1')
    await tcp('127.0.0.1', p4); await tcp('::1', p6)
    console.log('ok'); process.exit(0)
  } catch (e) { console.log('error ' + e.message); process.exit(3) }
})
`

describeKernel('cgroup socket hooks', ['root', 'bpf', 'cgroup2'], () => {
  let s4: Server
  let s6: Server
  let cgRoot: string
  beforeAll(async () => {
    ensureCgroup2()
    cgRoot = reachableCgroup2() ?? ensureCgroup2()
    s4 = createServer((s) => s.end())
    s6 = createServer((s) => s.end())
    await new Promise<void>((r) => s4.listen(0, '127.0.0.1', r))
    await new Promise<void>((r) => s6.listen(0, '::1', r))
  })
  afterAll(async () => {
    await new Promise<void>((r) => s4.close(() => r()))
    await new Promise<void>((r) => s6.close(() => r()))
  })

  async function exercise(cgPath: string): Promise<string> {
    const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] })
    try {
      writeFileSync(`${cgPath}/cgroup.procs`, String(child.pid))
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
      })
      const done = new Promise<void>((r) => child.once('exit', () => r()))
      const port = (s: Server) => (s.address() as { port: number }).port
      child.stdin.write(`${port(s4)} ${port(s6)}\n`)
      await done
      return out.trim()
    } finally {
      await killAndWait(child)
    }
  }

  it('attaches a link to every hook and each one runs', async () => {
    const cg = tempCgroup(cgRoot)
    using obj = BpfObject.open(testObject('loader_cgroup'))
    await obj.load()
    const links: BpfLink[] = []
    try {
      for (const [attachType, prog] of HOOKS) {
        links.push(await obj.program(prog).attachCgroup({ cgroupPath: cg.path, attachType }))
      }
      expect(await exercise(cg.path)).toBe('ok')
      const calls = obj.map('hook_calls')
      for (const [attachType, , idx] of HOOKS) {
        expect(calls.lookup(u32le(idx))!.readBigUInt64LE(), attachType).toBeGreaterThan(0n)
      }
    } finally {
      for (const l of links) l.close()
      cg.remove()
    }
  })

  it('link.update swaps the program atomically, optionally only if the expected one is attached', async () => {
    const cg = tempCgroup(cgRoot)
    using obj = BpfObject.open(testObject('loader_cgroup'))
    await obj.load()
    const a = obj.program('on_connect4')
    const b = obj.program('on_connect4_b')
    const calls = obj.map('hook_calls')
    const link = await a.attachCgroup({ cgroupPath: cg.path, attachType: 'connect4' })
    try {
      expect(link.info.progId).toBe(a.info.id)
      link.update(b, a)
      expect(link.info.progId).toBe(b.info.id)
      expect(() => link.update(a, a)).toThrow(
        expect.objectContaining({ code: 'EPERM', call: 'bpf_link_update' }),
      )
      expect(await exercise(cg.path)).toBe('ok')
      expect(calls.lookup(u32le(0))!.readBigUInt64LE()).toBe(0n)
      expect(calls.lookup(u32le(CONNECT4_B))!.readBigUInt64LE()).toBe(1n) // the one IPv4 TCP connect
    } finally {
      link.close()
      cg.remove()
    }
  })

  it('multi-attach runs both programs; exclusive attach refuses to mix with multi', async () => {
    const cg = tempCgroup(cgRoot)
    using obj = BpfObject.open(testObject('loader_cgroup'))
    await obj.load()
    const a = obj.program('on_connect4')
    const b = obj.program('on_connect4_b')
    const calls = obj.map('hook_calls')
    try {
      const la = await a.attachCgroup({
        cgroupPath: cg.path,
        attachType: 'connect4',
        mode: 'attach',
        multi: true,
      })
      const lb = await b.attachCgroup({
        cgroupPath: cg.path,
        attachType: 'connect4',
        mode: 'attach',
        multi: true,
      })
      expect(await exercise(cg.path)).toBe('ok')
      expect(calls.lookup(u32le(0))!.readBigUInt64LE()).toBe(1n)
      expect(calls.lookup(u32le(CONNECT4_B))!.readBigUInt64LE()).toBe(1n)
      lb.detach()
      la.detach()
      const ex = await a.attachCgroup({
        cgroupPath: cg.path,
        attachType: 'connect4',
        mode: 'attach',
        multi: false,
      })
      await expect(
        b.attachCgroup({
          cgroupPath: cg.path,
          attachType: 'connect4',
          mode: 'attach',
          multi: true,
        }),
      ).rejects.toMatchObject({ code: 'EPERM', call: 'bpf_prog_attach' })
      ex.close()
      expect(await exercise(cg.path)).toBe('ok')
      expect(calls.lookup(u32le(0))!.readBigUInt64LE()).toBe(1n) // detached: not called again
    } finally {
      cg.remove()
    }
  })
})
