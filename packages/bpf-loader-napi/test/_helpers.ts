import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The repository root. */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))

/** Path of a BPF test object (bpf-src/build/tests/<name>.o), built on demand. */
export function testObject(name: string): string {
  const path = `${repoRoot}bpf-src/build/tests/${name}.o`
  if (!existsSync(path)) {
    const r = spawnSync(
      'flock',
      ['/tmp/membrane-bpf.lock', process.execPath, `${repoRoot}tools/bpf-build.mjs`, '--quiet'],
      {
        stdio: 'inherit',
      },
    )
    if (r.status !== 0 || !existsSync(path)) throw new Error(`could not build ${path}`)
  }
  return path
}

/** An Ethernet + IPv4 + UDP packet from `src` to `dst` (checksums zero; fine for test runs). */
export function ipv4UdpPacket(src: string, dst: string, payload = Buffer.alloc(8)): Buffer {
  const eth = Buffer.alloc(14)
  eth.writeUInt16BE(0x0800, 12)
  const ip = Buffer.alloc(20)
  ip[0] = 0x45
  ip.writeUInt16BE(20 + 8 + payload.length, 2)
  ip[8] = 64
  ip[9] = 17
  src.split('.').forEach((p, i) => {
    ip[12 + i] = Number(p)
  })
  dst.split('.').forEach((p, i) => {
    ip[16 + i] = Number(p)
  })
  const udp = Buffer.alloc(8)
  udp.writeUInt16BE(1234, 0)
  udp.writeUInt16BE(5678, 2)
  udp.writeUInt16BE(8 + payload.length, 4)
  return Buffer.concat([eth, ip, udp, payload])
}

export function u32le(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return b
}

export function u64le(n: bigint | number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(BigInt(n))
  return b
}

/**
 * A usable cgroup v2 mount. test-utils' ensureCgroup2() returns the first cgroup2 line of
 * mountinfo, which can be hidden by a later mount over its parent (seen here: cgroup2 mounted
 * over /sys/fs/cgroup hides /sys/fs/cgroup/unified); take the last one that is reachable.
 */
export function reachableCgroup2(): string | undefined {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
  const found: string[] = []
  for (const line of lines) {
    const f = line.split(' ')
    const dash = f.indexOf('-')
    if (dash > 0 && f[dash + 1] === 'cgroup2' && f[4]) found.push(f[4])
  }
  for (const p of found.reverse()) {
    if (existsSync(`${p}/cgroup.procs`)) return p
  }
  return undefined
}
