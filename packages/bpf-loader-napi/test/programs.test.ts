import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import {
  describeKernel,
  ensureCgroup2,
  freePort,
  killAndWait,
  runSync,
  TestNetwork,
  tempBpffsDir,
  tempCgroup,
  type VethPair,
} from '@membrane/test-utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  BpfObject,
  be16,
  ipv4,
  openPinnedLink,
  openPinnedProgram,
  probeTcx,
  struct,
  u16,
} from '../src/index'
import { ipv4UdpPacket, reachableCgroup2, testObject, u32le } from './_helpers'

describeKernel('BpfProgram.testRun', ['root', 'bpf'], () => {
  let obj: BpfObject
  beforeAll(async () => {
    obj = BpfObject.open(testObject('loader_maps'))
    await obj.load()
  })
  afterAll(() => obj.close())

  it('runs a crafted packet: data out, ctx in/out (__sk_buff), retval, duration, repeat', async () => {
    const prog = obj.program('rewrite')
    expect(prog.type).toBe('sched_cls')
    const pkt = ipv4UdpPacket('10.0.0.1', '10.0.0.2')
    pkt[14] = 0x00 // the program rewrites it to 0x45
    const ctx = Buffer.alloc(192) // struct __sk_buff
    const r = await prog.testRun({ data: pkt, ctxIn: ctx, repeat: 100 })
    expect(r.retval).toBe(0)
    expect(r.data.length).toBe(pkt.length)
    expect(r.data[14]).toBe(0x45)
    expect(r.data.subarray(15)).toEqual(pkt.subarray(15))
    expect(r.ctx.readUInt32LE(8)).toBe(0x1234) // __sk_buff.mark
    expect(r.ctx.readUInt32LE(32)).toBe(7) // __sk_buff.priority
    expect(r.durationNs).toBeGreaterThanOrEqual(0)
    const short = await prog.testRun({ data: Buffer.alloc(14) })
    expect(short.retval).toBe(2) // TC_ACT_SHOT: no byte after the Ethernet header
  })

  it('names the input on bad testRun arguments and the call on kernel errors', async () => {
    const prog = obj.program('rewrite')
    await expect(prog.testRun({ data: 'x' as unknown as Buffer })).rejects.toThrow(
      /testRun of 'rewrite' data: expected a Buffer/,
    )
    await expect(prog.testRun({ data: Buffer.alloc(4) })).rejects.toMatchObject({
      code: 'EINVAL',
      call: 'bpf_prog_test_run_opts',
    })
  })

  it('tail calls through a prog_array filled with setProgram', async () => {
    using tc = BpfObject.open(testObject('loader_tailcall'))
    await tc.load()
    const entry = tc.program('tail_entry')
    const pkt = ipv4UdpPacket('1.1.1.1', '2.2.2.2')
    expect((await entry.testRun({ data: pkt })).retval).toBe(1)
    tc.map('jmp_table').setProgram(u32le(0), tc.program('tail_target'))
    expect((await entry.testRun({ data: pkt })).retval).toBe(7)
    expect(tc.map('jmp_table').delete(u32le(0))).toBe(true)
    expect((await entry.testRun({ data: pkt })).retval).toBe(1)
    expect(() => tc.map('jmp_table').setProgram(u32le(9), tc.program('tail_target'))).toThrow(
      expect.objectContaining({ code: 'E2BIG' }),
    )
  })

  it('pins a program and runs it through openPinnedProgram', async () => {
    const dir = tempBpffsDir()
    try {
      obj.program('rewrite').pin(`${dir.path}/rewrite`)
      using p = openPinnedProgram(`${dir.path}/rewrite`)
      expect(p.type).toBe('sched_cls')
      expect(p.name).toBe('rewrite')
      const r = await p.testRun({ data: ipv4UdpPacket('1.1.1.1', '2.2.2.2') })
      expect(r.data[14]).toBe(0x45)
      obj.program('rewrite').unpin()
    } finally {
      dir.remove()
    }
  })
})

async function pingFrom(
  ns: { exec(file: string, args?: readonly string[]): Promise<unknown> },
  addr: string,
  n: number,
) {
  await ns.exec('ping', ['-c', String(n), '-i', '0.05', '-W', '1', addr])
}

function packetCount(obj: BpfObject, map = 'counts'): bigint {
  return obj.map(map).lookup(u32le(0))!.readBigUInt64LE(0)
}

describeKernel(
  'attach to a veth in a namespace',
  ['root', 'bpf', 'netns', 'tc', 'bpffs', 'bin:ping'],
  () => {
    const net = new TestNetwork()
    let veth: VethPair
    let pins: { path: string; remove(): void }
    beforeAll(async () => {
      pins = tempBpffsDir()
      const ns = await net.namespace()
      // The host end gets an address: pick a /24 from this process id so parallel runs don't clash.
      const subnet = `10.213.${process.pid % 250}`
      veth = await net.veth({
        nsA: null,
        nsB: ns,
        addrA: `${subnet}.1/24`,
        addrB: `${subnet}.2/24`,
      })
    })
    afterAll(async () => {
      await net.cleanup()
      pins?.remove()
    })

    it('tc ingress (clsact) counts real ping packets, then detaches', async () => {
      using obj = BpfObject.open(testObject('count_packets'))
      await obj.load()
      const att = await obj
        .program('count_packets')
        .attachTc({ ifname: veth.a, direction: 'ingress', priority: 7, handle: 3 })
      expect(att).toMatchObject({ priority: 7, handle: 3, direction: 'ingress' })
      try {
        const shown = runSync('tc', ['filter', 'show', 'dev', veth.a, 'ingress']).stdout
        expect(shown).toMatch(/count_packets/)
        await pingFrom(veth.nsB!, veth.addrA!, 5)
        expect(packetCount(obj)).toBeGreaterThanOrEqual(5n)
        // same handle/priority without replace: EEXIST, with replace: fine
        await expect(
          obj
            .program('count_packets')
            .attachTc({ ifname: veth.a, direction: 'ingress', priority: 7, handle: 3 }),
        ).rejects.toMatchObject({ code: 'EEXIST', call: 'bpf_tc_attach' })
        await obj
          .program('count_packets')
          .attachTc({ ifname: veth.a, direction: 'ingress', priority: 7, handle: 3, replace: true })
      } finally {
        expect(await att.detach()).toBe(true)
      }
      expect(runSync('tc', ['filter', 'show', 'dev', veth.a, 'ingress']).stdout).not.toMatch(
        /count_packets/,
      )
      const before = packetCount(obj)
      await pingFrom(veth.nsB!, veth.addrA!, 2)
      expect(packetCount(obj)).toBe(before)
      await expect(
        obj.program('count_packets').attachTc({ ifname: 'no-such-if0', direction: 'egress' }),
      ).rejects.toMatchObject({ code: 'ENODEV', call: 'if_nametoindex' })
      await expect(
        obj.program('count_packets').attachTc({ ifname: 'bad/name', direction: 'egress' }),
      ).rejects.toThrow(/ifname: expected an interface name/)
    })

    it('tcx ingress link counts packets; a pinned link outlives its handle', async () => {
      if (!probeTcx()) {
        using obj = BpfObject.open(testObject('count_packets'))
        await obj.load()
        await expect(
          obj.program('count_packets').attachTcx({ ifname: veth.a, direction: 'ingress' }),
        ).rejects.toMatchObject({
          code: 'NOT_SUPPORTED',
        })
        return
      }
      using obj = BpfObject.open(testObject('count_packets'))
      await obj.load()
      const link = await obj
        .program('count_packets')
        .attachTcx({ ifname: veth.a, direction: 'ingress' })
      expect(link.info.progId).toBe(obj.program('count_packets').info.id)
      await pingFrom(veth.nsB!, veth.addrA!, 3)
      const afterPing = packetCount(obj)
      expect(afterPing).toBeGreaterThanOrEqual(3n)
      link.pin(`${pins.path}/tcx_link`)
      link.close() // pinned: stays attached
      await pingFrom(veth.nsB!, veth.addrA!, 2)
      const afterClose = packetCount(obj)
      expect(afterClose).toBeGreaterThanOrEqual(afterPing + 2n)
      const reopened = openPinnedLink(`${pins.path}/tcx_link`)
      reopened.unpin()
      reopened.close() // last reference gone: detached
      // The pin's own reference goes when bpffs evicts the inode, which the kernel may defer a
      // little: wait until pings stop being counted (they must, within a few tries).
      let detached = false
      for (let i = 0; i < 20 && !detached; i++) {
        const before = packetCount(obj)
        await pingFrom(veth.nsB!, veth.addrA!, 2)
        detached = packetCount(obj) === before
        if (!detached) await new Promise((r) => setTimeout(r, 100))
      }
      expect(detached).toBe(true)
    })

    it('XDP generic: attach, refuse a second without replace, replace, detach', async () => {
      using obj = BpfObject.open(testObject('loader_xdp'))
      await obj.load()
      const pass = obj.program('xdp_count_pass')
      const drop = obj.program('xdp_drop_all')
      expect(pass.type).toBe('xdp')
      const att = await pass.attachXdp({ ifname: veth.a, mode: 'generic' })
      try {
        expect(att.attachedProgramId()).toBe(pass.info.id)
        await pingFrom(veth.nsB!, veth.addrA!, 3)
        expect(packetCount(obj, 'xdp_count')).toBeGreaterThanOrEqual(3n)
        await expect(drop.attachXdp({ ifname: veth.a, mode: 'generic' })).rejects.toMatchObject({
          call: 'bpf_xdp_attach',
        })
        const replaced = await drop.attachXdp({ ifname: veth.a, mode: 'generic', replace: true })
        expect(replaced.attachedProgramId()).toBe(drop.info.id)
        await att.detach() // no longer ours: left alone
        expect(replaced.attachedProgramId()).toBe(drop.info.id)
        await expect(pingFrom(veth.nsB!, veth.addrA!, 1)).rejects.toThrow() // dropped
        await replaced.detach()
        expect(replaced.attachedProgramId()).toBe(0)
      } finally {
        att.close()
      }
      await pingFrom(veth.nsB!, veth.addrA!, 1)
    })

    it('XDP native (driver) mode on veth counts packets and detaches', async () => {
      using obj = BpfObject.open(testObject('loader_xdp'))
      await obj.load()
      const pass = obj.program('xdp_count_pass')
      const att = await pass.attachXdp({ ifname: veth.a, mode: 'native' })
      try {
        expect(att.mode).toBe('native')
        expect(att.attachedProgramId()).toBe(pass.info.id)
        expect(runSync('ip', ['link', 'show', 'dev', veth.a]).stdout).toMatch(/xdp(drv)? /)
        await pingFrom(veth.nsB!, veth.addrA!, 3)
        expect(packetCount(obj, 'xdp_count')).toBeGreaterThanOrEqual(3n)
      } finally {
        att.close()
      }
      expect(att.attachedProgramId()).toBe(0)
      expect(runSync('ip', ['link', 'show', 'dev', veth.a]).stdout).not.toMatch(/prog\/xdp/)
    })
  },
)

const CHILD = `
const net = require('node:net')
process.stdin.once('data', (line) => {
  const [host, port] = String(line).trim().split(' ')
  const s = net.connect(Number(port), host, () => s.write('ping'))
  s.on('data', (d) => { process.stdout.write('got:' + d + ' remote:' + s.remotePort + '\\n'); s.end() })
  s.on('error', (e) => { process.stdout.write('error:' + e.code + '\\n'); process.exit(3) })
  s.on('close', () => process.exit(0))
  setTimeout(() => { process.stdout.write('timeout\\n'); process.exit(4) }, 5000).unref()
})
`

describeKernel('attachCgroup connect4', ['root', 'bpf', 'cgroup2'], () => {
  let server: Server
  let port: number
  let cgRoot: string
  beforeAll(async () => {
    ensureCgroup2()
    cgRoot = reachableCgroup2() ?? ensureCgroup2()
    port = await freePort()
    server = createServer((s) => s.on('data', () => s.end('pong')))
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r))
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  async function runClientInCgroup(cgPath: string, host: string, p: number): Promise<string> {
    const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] })
    try {
      writeFileSync(`${cgPath}/cgroup.procs`, String(child.pid))
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
      })
      const done = new Promise<void>((r) => child.once('exit', () => r()))
      child.stdin.write(`${host} ${p}\n`)
      await done
      return out.trim()
    } finally {
      await killAndWait(child)
    }
  }

  for (const mode of ['link', 'attach'] as const) {
    it(`rewrites a connect to a dummy address into a real server (${mode})`, async () => {
      const cg = tempCgroup(cgRoot)
      try {
        using obj = BpfObject.open(testObject('loader_connect4'))
        await obj.load()
        const prog = obj.program('connect4_rewrite')
        expect(prog.type).toBe('cgroup_sock_addr')
        const addr = struct([
          ['ip', ipv4],
          ['port', be16],
          ['pad', u16],
        ] as const)
        const rewrites = obj.map('rewrites').typed(addr, addr)
        rewrites.update({ ip: '10.255.77.7', port: 80, pad: 0 }, { ip: '127.0.0.1', port, pad: 0 })
        const link = await prog.attachCgroup({ cgroupPath: cg.path, attachType: 'connect4', mode })
        try {
          expect(await runClientInCgroup(cg.path, '10.255.77.7', 80)).toBe(
            `got:pong remote:${port}`,
          )
          expect(obj.map('rewrite_count').lookup(u32le(0))!.readBigUInt64LE()).toBe(1n)
        } finally {
          link.close()
        }
        // detached: the dummy address is not rewritten any more
        expect(await runClientInCgroup(cg.path, '127.0.0.1', port)).toBe(`got:pong remote:${port}`)
        expect(obj.map('rewrite_count').lookup(u32le(0))!.readBigUInt64LE()).toBe(1n)
      } finally {
        cg.remove()
      }
    })
  }

  it('names a missing cgroup and a bad attach type', async () => {
    using obj = BpfObject.open(testObject('loader_connect4'))
    await obj.load()
    const prog = obj.program('connect4_rewrite')
    await expect(
      prog.attachCgroup({ cgroupPath: `${cgRoot}/does-not-exist`, attachType: 'connect4' }),
    ).rejects.toMatchObject({
      code: 'ENOENT',
      call: 'open',
    })
    await expect(
      prog.attachCgroup({ cgroupPath: cgRoot, attachType: 'connect5' as 'connect4' }),
    ).rejects.toThrow(/attachType: expected one of connect4/)
  })
})

describe('module shape', () => {
  it('exports the contract names', async () => {
    const mod = await import('../src/index')
    for (const name of [
      'BpfObject',
      'BpfMap',
      'BpfProgram',
      'RingBuffer',
      'createMap',
      'openPinnedMap',
      'openPinnedProgram',
      'BpfError',
      'VerifierError',
      'NotSupportedError',
      'setSocketMark',
      'getSocketCookie',
      'setIpTransparent',
      'probeKernel',
    ]) {
      expect(mod, name).toHaveProperty(name)
    }
  })
})
