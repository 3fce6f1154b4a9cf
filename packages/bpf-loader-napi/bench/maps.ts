// Map operations, ours vs the npm `bpf` package, in one run:
//  - single lookup / update on a hash map with 4-byte keys and 8-byte values (ops/s)
//  - batch update / lookup of 100k entries (entries/s)
// Each side is also measured per second of its process's CPU time (user + system, all
// threads: GC and worker threads count against us): on a loaded machine the wall-clock rates
// follow the share of the CPUs each process was given, the CPU-time rates the work it did.
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, reportFigure } from '@membrane/test-utils'
import { createMap } from '../src/index'
import { loadPeer } from './_peer'

// Many short interleaved slices (C floor, ours, peer) so that load from other processes on
// this shared machine hits all three alike. Values are medians over the rounds; the ratios are
// medians of each round's own ratio (ours / floor measured moments apart in the same round),
// with the lowest and highest round beside them, so a load spike in one slice moves one
// round's ratio rather than the reported one.
const SINGLE_ROUNDS = 11
const BATCH_ROUNDS = 7
const SLICE_MS = 200
const ENTRIES = 100_000
const peer = loadPeer()
if ('error' in peer)
  process.stderr.write(`bench: peer unavailable, reporting ours alone: ${peer.error}\n`)
const peerInfo =
  'error' in peer
    ? { peer: 'bpf (unavailable)' }
    : { peer: `bpf@${peer.version}`, peerBinary: 'built from source' }

// The same operations from C (bench/_floor.c): what the bpf() syscall allows on this machine now.
let floorBin: string | undefined
try {
  floorBin = join(tmpdir(), `membrane-bench-floor-${process.pid}`)
  execFileSync('gcc', [
    '-O2',
    '-o',
    floorBin,
    fileURLToPath(new URL('./_floor.c', import.meta.url)),
    '-lbpf',
  ])
} catch (error) {
  process.stderr.write(`bench: no C floor (gcc/libbpf): ${(error as Error).message}\n`)
  floorBin = undefined
}
interface Floor {
  lookup: number
  lookupCpu: number
  update: number
  updateCpu: number
  batchUpdate: number
  batchUpdateCpu: number
  batchLookup: number
  batchLookupCpu: number
}
/** Wall-clock and CPU-time rates of each round. */
interface Runs {
  wall: number[]
  cpu: number[]
}
const runs = (): Runs => ({ wall: [], cpu: [] })
/** CPU seconds (user + system, every thread) this process used since `c0`. */
const cpuSince = (c0: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / 1e6
}

/**
 * `op` (doing `opsPerCall` operations) after 100 warm-up calls, in chunks of 64 calls for about
 * SLICE_MS: operations per second of wall time and per second of this process's CPU time.
 */
function measure(into: Runs, op: () => void, opsPerCall: number): void {
  for (let i = 0; i < 100; i++) op()
  const limit = BigInt(SLICE_MS) * 1_000_000n
  let calls = 0
  let elapsed = 0n
  const c0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  do {
    for (let i = 0; i < 64; i++) op()
    calls += 64
    elapsed = process.hrtime.bigint() - t0
  } while (elapsed < limit)
  const cpu = cpuSince(c0)
  into.wall.push((calls * opsPerCall) / (Number(elapsed) / 1e9))
  into.cpu.push((calls * opsPerCall) / cpu)
}
function floor(ms: number, withBatch = false): Floor | undefined {
  if (!floorBin) return undefined
  const args = withBatch ? [String(ms), 'batch'] : [String(ms)]
  return JSON.parse(execFileSync(floorBin, args, { encoding: 'utf8' })) as Floor
}

/** Median of the per-round ratios ours[i] / base[i], and their range. */
function pairedRatio(ours: readonly number[], base: readonly number[]) {
  const r = ours.slice(0, base.length).map((o, i) => o / base[i]!)
  const two = (x: number) => Number(x.toFixed(2))
  return { ratio: two(median(r)), range: [two(Math.min(...r)), two(Math.max(...r))] }
}

function ratios(ours: Runs, peer: Runs, floor: Runs) {
  const vsPeer = peer.wall.length ? pairedRatio(ours.wall, peer.wall) : undefined
  const vsC = floor.wall.length ? pairedRatio(ours.wall, floor.wall) : undefined
  const cpuVsPeer = peer.cpu.length ? pairedRatio(ours.cpu, peer.cpu) : undefined
  const cpuVsC = floor.cpu.length ? pairedRatio(ours.cpu, floor.cpu) : undefined
  return {
    ...(vsPeer
      ? {
          peerValue: Math.round(median(peer.wall)),
          ratioVsPeer: vsPeer.ratio,
          ratioVsPeerRange: vsPeer.range,
        }
      : {}),
    ...(vsC
      ? {
          cSyscallFloor: Math.round(median(floor.wall)),
          ratioVsC: vsC.ratio,
          ratioVsCRange: vsC.range,
        }
      : {}),
    cpuValue: Math.round(median(ours.cpu)),
    ...(cpuVsPeer ? { cpuRatioVsPeer: cpuVsPeer.ratio, cpuRatioVsPeerRange: cpuVsPeer.range } : {}),
    ...(cpuVsC
      ? {
          cSyscallFloorCpu: Math.round(median(floor.cpu)),
          cpuRatioVsC: cpuVsC.ratio,
          cpuRatioVsCRange: cpuVsC.range,
        }
      : {}),
  }
}

function keyOf(i: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(i)
  return b
}

async function singleOps() {
  const N = 1000
  const keys = Array.from({ length: N }, (_, i) => keyOf(i))
  const value = Buffer.alloc(8, 1)
  const into = Buffer.alloc(8)
  const ours = createMap({
    type: 'hash',
    keySize: 4,
    valueSize: 8,
    maxEntries: 4096,
    name: 'bench_single',
  })
  const theirs = 'error' in peer ? undefined : peer.createHash(4, 8, 4096)
  for (const k of keys) {
    ours.update(k, value)
    theirs?.map.set(k, value)
  }
  const results = {
    oursLookup: runs(),
    oursUpdate: runs(),
    oursLookupInto: runs(),
    peerLookup: runs(),
    peerUpdate: runs(),
    cLookup: runs(),
    cUpdate: runs(),
  }
  for (let r = 0; r < SINGLE_ROUNDS; r++) {
    const f = floor(SLICE_MS)
    if (f) {
      results.cLookup.wall.push(f.lookup)
      results.cLookup.cpu.push(f.lookupCpu)
      results.cUpdate.wall.push(f.update)
      results.cUpdate.cpu.push(f.updateCpu)
    }
    measure(
      results.oursLookup,
      () => {
        for (let i = 0; i < N; i++) ours.lookup(keys[i]!)
      },
      N,
    )
    if (theirs)
      measure(
        results.peerLookup,
        () => {
          for (let i = 0; i < N; i++) theirs.map.get(keys[i]!)
        },
        N,
      )
    measure(
      results.oursLookupInto,
      () => {
        for (let i = 0; i < N; i++) ours.lookupInto(keys[i]!, into)
      },
      N,
    )
    measure(
      results.oursUpdate,
      () => {
        for (let i = 0; i < N; i++) ours.update(keys[i]!, value)
      },
      N,
    )
    if (theirs)
      measure(
        results.peerUpdate,
        () => {
          for (let i = 0; i < N; i++) theirs.map.set(keys[i]!, value)
        },
        N,
      )
  }
  const out = (name: string, ours: Runs, theirs: Runs, c: Runs) => {
    reportFigure({
      name,
      value: Math.round(median(ours.wall)),
      unit: 'ops/s',
      rounds: ours.wall.length,
      ...peerInfo,
      ...ratios(ours, theirs, c),
      target: '>= 0.85 of the C syscall floor and faster than the peer',
      keySize: 4,
      valueSize: 8,
    })
  }
  out('hash single lookup', results.oursLookup, results.peerLookup, results.cLookup)
  out('hash single update', results.oursUpdate, results.peerUpdate, results.cUpdate)
  // lookupInto (no allocation per lookup) against the same floor; the peer has no equivalent,
  // so its row is the peer's plain lookup
  out(
    'hash single lookupInto (no allocation)',
    results.oursLookupInto,
    results.peerLookup,
    results.cLookup,
  )
  ours.close()
  theirs?.close()
}

async function batchOps() {
  const keys = Buffer.alloc(4 * ENTRIES)
  const values = Buffer.alloc(8 * ENTRIES)
  const pairs: Array<[Buffer, Buffer]> = []
  for (let i = 0; i < ENTRIES; i++) {
    keys.writeUInt32LE(i, 4 * i)
    values.writeBigUInt64LE(BigInt(i), 8 * i)
    pairs.push([keys.subarray(4 * i, 4 * i + 4), values.subarray(8 * i, 8 * i + 8)])
  }
  // Every round writes into fresh maps, like the C floor: inserts, not replacements.
  const fresh = () =>
    createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: ENTRIES, name: 'bench_batch' })
  const cUpd = runs()
  const cLook = runs()
  const t = {
    oursUpd: runs(),
    oursUpdPairs: runs(),
    oursLook: runs(),
    peerUpd: runs(),
    peerLook: runs(),
  }
  const time = async (into: Runs, fn: () => unknown) => {
    const c0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    await fn()
    into.wall.push(ENTRIES / (Number(process.hrtime.bigint() - t0) / 1e9))
    into.cpu.push(ENTRIES / cpuSince(c0))
  }
  const settle = () => new Promise((r) => setTimeout(r, 250))
  for (let r = 0; r < BATCH_ROUNDS; r++) {
    const f = floor(50, true)
    if (f) {
      cUpd.wall.push(f.batchUpdate)
      cUpd.cpu.push(f.batchUpdateCpu)
      cLook.wall.push(f.batchLookup)
      cLook.cpu.push(f.batchLookupCpu)
    }
    const ours = fresh()
    const ours2 = fresh()
    const theirs = 'error' in peer ? undefined : peer.createHash(4, 8, ENTRIES)
    // The kernel frees closed 100k-entry maps (the C floor's, the last round's) in a worker
    // thread; let that finish so it doesn't share the two cores with the timed writes.
    await settle()
    await time(t.oursUpd, () => ours.batchUpdate({ keys, values }))
    await settle()
    await time(t.oursUpdPairs, () => ours2.batchUpdate(pairs))
    ours2.close()
    await settle()
    await time(t.oursLook, async () => {
      const p = await ours.batchLookupPacked()
      if (p.count !== ENTRIES) throw new Error(`batch lookup returned ${p.count}`)
    })
    if (theirs) {
      await settle()
      await time(t.peerUpd, () => theirs.map.setBatch(pairs))
      await time(t.peerLook, () => {
        let n = 0
        for (const batch of theirs.map.getBatch(ENTRIES)) n += batch.length
        if (n !== ENTRIES) throw new Error(`peer batch lookup returned ${n}`)
      })
    }
    ours.close()
    theirs?.close()
  }
  const out = (name: string, ours: Runs, theirs: Runs, c: Runs) => {
    reportFigure({
      name,
      value: Math.round(median(ours.wall)),
      unit: 'entries/s',
      entries: ENTRIES,
      rounds: ours.wall.length,
      ...peerInfo,
      ...ratios(ours, theirs, c),
      target: '>= 0.85 of the C syscall floor and faster than the peer',
    })
  }
  out('hash batch update (packed buffers)', t.oursUpd, t.peerUpd, cUpd)
  out('hash batch update ([key, value] pairs)', t.oursUpdPairs, t.peerUpd, cUpd)
  out('hash batch lookup (packed)', t.oursLook, t.peerLook, cLook)
}

await singleOps()
await batchOps()
if (floorBin) execFileSync('rm', ['-f', floorBin])
