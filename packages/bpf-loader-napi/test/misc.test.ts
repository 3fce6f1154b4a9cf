import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { describeKernel } from '@membrane/test-utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  addonCandidates,
  addonHelp,
  loadAddonFrom,
  prebuiltCandidates,
  runningLibc,
} from '../src/_addon'
import { BpfError, fromNative } from '../src/errors'
import {
  getIpTransparent,
  getSocketCookie,
  getSocketMark,
  probeKernel,
  probeMapType,
  probeProgramType,
  setIpTransparent,
  setSocketMark,
} from '../src/index'

describe('addon loader', () => {
  it('tries $MEMBRANE_BPF_ADDON first, then build/Release and build/Debug, then the prebuilt', () => {
    const prev = process.env.MEMBRANE_BPF_ADDON
    process.env.MEMBRANE_BPF_ADDON = '/opt/custom/membrane_bpf.node'
    try {
      const paths = addonCandidates()
      expect(paths[0]).toBe('/opt/custom/membrane_bpf.node')
      expect(paths.slice(1).map((p) => p.replace(/.*bpf-loader-napi\//, ''))).toEqual([
        'build/Release/membrane_bpf.node',
        'build/Debug/membrane_bpf.node',
        'prebuilds/linux-x64/membrane_bpf.napi.glibc.node',
      ])
    } finally {
      if (prev === undefined) delete process.env.MEMBRANE_BPF_ADDON
      else process.env.MEMBRANE_BPF_ADDON = prev
    }
  })

  it('lists each path tried and why, when no addon loads', () => {
    // a file that exists but is no shared object: dlopen refuses it
    const notAddon = join(mkdtempSync(join(tmpdir(), 'mbt-addon-')), 'membrane_bpf.node')
    writeFileSync(notAddon, 'not an ELF file')
    let err: (Error & { attempts?: Array<{ path: string; error: string }> }) | undefined
    try {
      loadAddonFrom(['/nonexistent/membrane_bpf.node', notAddon])
    } catch (e) {
      err = e as typeof err
    }
    expect(err?.message).toMatch(/could not be loaded\. Tried:/)
    expect(err?.message).toContain('/nonexistent/membrane_bpf.node: not found')
    expect(err?.attempts?.[1]?.path).toBe(notAddon)
    expect(err?.attempts?.[1]?.error).toMatch(/file too short|invalid ELF header/)
    rmSync(dirname(notAddon), { recursive: true })
    // the from-source commands of npm 11, verbatim
    expect(err?.message).toContain('npm install-scripts approve @membrane/bpf-loader-napi')
    expect(err?.message).toContain('npm rebuild @membrane/bpf-loader-napi')
  })

  it('names the runtime libbpf package when the prebuilt cannot find libbpf.so.1', () => {
    const help = addonHelp([
      {
        path: '/x/prebuilds/linux-x64/membrane_bpf.napi.glibc.node',
        error: 'libbpf.so.1: cannot open shared object file: No such file or directory',
      },
    ])
    expect(help).toContain('apt-get install libbpf1')
    expect(addonHelp([{ path: '/x', error: 'not found' }])).not.toContain('libbpf1')
  })

  it('picks prebuilt files by libc tag (node-gyp-build layout)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mbt-prebuilds-'))
    try {
      for (const f of ['membrane_bpf.napi.glibc.node', 'membrane_bpf.napi.musl.node', 'x.txt'])
        writeFileSync(join(dir, f), '')
      expect(prebuiltCandidates(dir, 'glibc')).toEqual([join(dir, 'membrane_bpf.napi.glibc.node')])
      expect(prebuiltCandidates(dir, 'musl')).toEqual([join(dir, 'membrane_bpf.napi.musl.node')])
      expect(prebuiltCandidates(join(dir, 'absent'), 'glibc')).toEqual([
        join(dir, 'absent', 'membrane_bpf.napi.glibc.node'),
      ])
      expect(runningLibc()).toBe('glibc') // Debian
    } finally {
      rmSync(dir, { recursive: true })
    }
  })
})

describe('error conversion', () => {
  it('adds hints for EPERM, E2BIG and ENOENT on a pin outside bpffs', () => {
    const native = (errno: number, call: string, detail = '') =>
      fromNative(
        Object.assign(new Error(`${call}: boom`), { errno, call, detail, syscode: undefined }),
      ) as BpfError
    const eperm = native(1, 'bpf_map_create')
    expect(eperm).toBeInstanceOf(BpfError)
    expect(eperm.code).toBe('EPERM')
    expect(eperm.hint).toMatch(/root.*CAP_BPF/)
    expect(native(7, 'bpf_map_update_elem').hint).toMatch(/max_entries/)
    expect(native(2, 'bpf_obj_get', '/tmp/x/pin').hint).toMatch(/bpffs is not mounted at \/tmp\/x/)
    expect(native(28, 'bpf_object__load').hint).toMatch(/larger logSize/)
    expect(native(22, 'bpf_link_create').hint).toBeUndefined()
    expect(native(22, 'bpf_link_create').code).toBe('EINVAL')
  })
})

describeKernel('feature probes', ['root', 'bpf'], () => {
  it('probeKernel summarizes this kernel', () => {
    const k = probeKernel()
    expect(k.kernel).toMatch(/^\d+\.\d+/)
    expect(k.libbpf).toMatch(/^1\.\d+/)
    expect(k.privileges.root).toBe(true)
    expect(k.programTypes.sched_cls).toBe(true)
    expect(k.mapTypes.ringbuf).toBe(true)
    expect(k.helpers.map_lookup_elem).toBe(true)
    expect(typeof k.tcx).toBe('boolean')
    expect(k.errors).toEqual([])
    expect(k.mounts.bpffs).toBeDefined()
    expect(existsSync(`${k.mounts.cgroup2}/cgroup.procs`)).toBe(true)
    expect(probeProgramType('xdp')).toBe(true)
    expect(probeMapType('lpm_trie')).toBe(true)
    expect(() => probeMapType('nope' as 'hash')).toThrow(/map type name/)
  })
})

describeKernel('socket helpers', ['root'], () => {
  let server: Server
  let client: Socket
  let accepted: Socket
  beforeAll(async () => {
    server = createServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as { port: number }).port
    const acceptedP = new Promise<Socket>((r) => server.once('connection', r))
    client = createConnection(port, '127.0.0.1')
    await new Promise<void>((r) => client.once('connect', r))
    accepted = await acceptedP
  })
  afterAll(async () => {
    client.destroy()
    accepted.destroy()
    await new Promise<void>((r) => server.close(() => r()))
  })

  it('sets and reads SO_MARK on a Node socket', () => {
    setSocketMark(client, 0xbeef)
    expect(getSocketMark(client)).toBe(0xbeef)
    expect(() => setSocketMark(client, -1)).toThrow(/mark: expected an integer/)
  })

  it('reads distinct, stable SO_COOKIEs', () => {
    const a = getSocketCookie(client)
    const b = getSocketCookie(accepted)
    expect(typeof a).toBe('bigint')
    expect(a).toBeGreaterThan(0n)
    expect(a).not.toBe(b)
    expect(getSocketCookie(client)).toBe(a)
  })

  it('sets IP_TRANSPARENT; clear errors for non-sockets', () => {
    expect(getIpTransparent(server)).toBe(false)
    setIpTransparent(server)
    expect(getIpTransparent(server)).toBe(true)
    const file = openSync('/dev/null', 'r')
    try {
      expect(() => setSocketMark(file, 1)).toThrow(
        expect.objectContaining({ code: 'ENOTSOCK', call: 'setsockopt(SO_MARK)' }),
      )
    } finally {
      closeSync(file)
    }
    expect(() => getSocketCookie({} as never)).toThrow(
      /getSocketCookie socket: expected a socket file descriptor/,
    )
  })
})

describeKernel('privileges', ['root', 'bpf', 'bin:setpriv'], () => {
  it('EPERM without CAP_BPF/CAP_SYS_ADMIN carries the call and the privilege hint', async () => {
    const { execFileSync } = await import('node:child_process')
    const src = JSON.stringify(new URL('../src/index.ts', import.meta.url).href)
    const code = `const m = await import(${src});
      try { m.createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1 }); console.log('created') }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, errno: e.errno, call: e.call, hint: e.hint })) }`
    const out = execFileSync(
      'setpriv',
      [
        '--bounding-set=-bpf,-sys_admin,-perfmon,-net_admin',
        process.execPath,
        '--conditions=@membrane/source',
        '--import',
        'tsx',
        '-e',
        code,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    )
    const err = JSON.parse(out.trim().split('\n').pop()!)
    expect(err).toMatchObject({ name: 'BpfError', code: 'EPERM', errno: 1, call: 'bpf_map_create' })
    expect(err.hint).toMatch(/CAP_BPF/)
  })
})
