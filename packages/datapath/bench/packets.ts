/**
 * ns/packet of the endpoint program through BPF_PROG_TEST_RUN, at two scales held side by
 * side (two pin roots), measured interleaved so both see the same machine noise:
 *   small: 10 services (3 backends each), 100 policy entries, 100 ipcache prefixes
 *   big:   10,000 services, 50,000 policy entries, 10,000 ipcache prefixes
 * Cases, each the median of ROUNDS runs of BPF_PROG_TEST_RUN with repeat=20000:
 *   a_new_connection: the first packet of a connection allowed by an L3/L4 entry (ipcache,
 *     local-endpoint lookup, two policy LPM lookups, conntrack misses) — measured with the
 *     benchmark build (bpf-src/tests/dp_bench.c) that skips the conntrack insert;
 *   b_established: a packet of an established connection (endpoint.o itself);
 *   c_service_dnat: a new connection to a ClusterIP: service lookup, Maglev selection, DNAT
 *     with checksum updates, policy (benchmark build: no conntrack inserts, and one extra
 *     rewrite that undoes the DNAT so the next run translates again);
 *   a_new_connection6, b_established6: the IPv6 twins of a) and b) (the same endpoint's IPv6
 *     address, the same policy entry; IPv6 runs in from_container6 behind a tail call).
 * Also single runs with a fresh packet each (`*_single`: conntrack inserts included, cold
 * packet data, plus the fixed measurement cost shown by `baseline_single`).
 */
import { median, reportFigure, tempBpffsDir } from '@membrane/test-utils'
import { Datapath } from '../src/index'
import { buildPacket, buildPacket6, TcpFlags } from '../src/testing'

const EP = {
  id: 10,
  identity: 1000,
  ifindex: 1,
  ip: '10.0.1.10',
  ip6: 'fd00:1::a',
  mac: '02:00:00:00:01:0a',
}
const DST = '10.0.2.5'
const DST6 = 'fd00:2::5'
const SAMPLES = Number(process.env.DP_BENCH_SAMPLES ?? 2000)
const ROUNDS = Number(process.env.DP_BENCH_ROUNDS ?? 11)

function rng(seed: number) {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s
  }
}

type Prog = ReturnType<Datapath['program']>

interface Setup {
  name: 'small' | 'big'
  dp: Datapath
  pins: { path: string; remove(): void }
  prog: Prog
  bench: Prog
  close(): void
  vip: string
  services: number
  entries: number
}

async function setup(
  name: 'small' | 'big',
  services: number,
  policies: number,
  prefixes: number,
): Promise<Setup> {
  const pins = tempBpffsDir()
  const dp = await Datapath.open({
    pinRoot: pins.path,
    // The node's endpoint pool: the measured destinations (DST, the backends) are elsewhere.
    localCidr4: '10.0.1.0/24',
    // Sized for the big scale's 10,000 services (as a node with that many would be).
    maglevDirectTables: 16384,
    events: { traceNew: false, verdicts: false },
  })
  const r = rng(42)
  dp.endpoints.upsert(EP)
  // A node's BandwidthManager (given `present`) keeps mb_throttle_on and sets its switch, so
  // endpoints without limits skip the throttle lookup; this endpoint has none.
  dp.unsafeMap('mb_throttle_on').update(Buffer.alloc(4), Buffer.from([1, 0, 0, 0]))
  dp.ipcache.upsert(`${DST}/32`, 2000)
  dp.ipcache.upsert(`${DST6}/128`, 2000)
  for (let i = 0; i < prefixes; i++)
    dp.ipcache.upsert(`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`, 256 + (i % 60000))
  // Policy: the entries the measured flows hit, plus filler over 500 endpoints.
  dp.policyMap(EP.id).apply({
    upserts: [
      {
        key: { identity: 2000, direction: 'egress', protocol: 6, port: 80 },
        value: { deny: false },
      },
      {
        key: { identity: 3000, direction: 'egress', protocol: 6, port: 8080 },
        value: { deny: false },
      },
    ],
  })
  type Upsert = {
    key: { identity: number; direction: 'ingress' | 'egress'; protocol: number; port: number }
    value: { deny: boolean }
  }
  const batches = new Map<number, Upsert[]>()
  for (let i = 0; i < policies - 2; i++) {
    const ep = 1 + (r() % 500)
    const list = batches.get(ep) ?? []
    list.push({
      key: {
        identity: 256 + (r() % 60000),
        direction: r() % 2 ? 'ingress' : 'egress',
        protocol: r() % 2 ? 6 : 17,
        port: 1 + (r() % 65535),
      },
      value: { deny: false },
    })
    batches.set(ep, list)
  }
  for (const [ep, upserts] of batches) dp.policyMap(ep).apply({ upserts })
  let vip = ''
  const pick = r() % services
  for (let s = 0; s < services; s++) {
    const address = `10.96.${s >> 8}.${s & 255}`
    if (s === pick) vip = address
    dp.services.upsert({
      address,
      port: 80,
      backends: [1, 2, 3].map((b) => ({ address: `10.0.${3 + (s % 200)}.${b}`, port: 8080 })),
    })
  }
  dp.ipcache.upsert('10.0.0.0/16', 3000) // backends
  const entries = dp.unsafeMap('mb_policy').keys().length
  process.stderr.write(
    `datapath bench ${name}: ${services} services, ${entries} policy entries, ${prefixes} prefixes\n`,
  )
  // The benchmark build of the same program (bpf-src/tests/dp_bench.c): no conntrack
  // inserts and service DNAT undone at the end, so `repeat` re-runs the new-connection path.
  const loader = await import('@membrane/bpf-loader-napi')
  const obj = loader.BpfObject.open(`${dp.objectDir}/tests/dp_bench.o`, { pinRoot: pins.path })
  obj.setMaxEntries('mb_lb_maglev_direct', dp.maglevDirectTables)
  await obj.load()
  return {
    name,
    dp,
    pins,
    prog: dp.program('from_container'),
    bench: obj.program('from_container') as unknown as Prog,
    close: () => obj.close(),
    vip,
    services,
    entries,
  }
}

const pkt = (sport: number, daddr: string, dport: number, flags: number) =>
  buildPacket({ saddr: EP.ip, sport, daddr, dport, protocol: 'TCP', tcpFlags: flags })

const pkt6 = (sport: number, daddr: string, dport: number, flags: number) =>
  buildPacket6({ saddr: EP.ip6, sport, daddr, dport, protocol: 'TCP', tcpFlags: flags })

const scales = [await setup('small', 10, 100, 100), await setup('big', 10_000, 50_000, 10_000)]
try {
  const est = pkt(60000, DST, 80, TcpFlags.ACK)
  const est6 = pkt6(60000, DST6, 80, TcpFlags.ACK)
  for (const s of scales) {
    await s.prog.testRun({ data: est })
    await s.prog.testRun({ data: est6 })
  }
  const repeatCases: Record<string, (s: Setup) => [Prog, Buffer]> = {
    a_new_connection: (s) => [s.bench, pkt(1024, DST, 80, TcpFlags.SYN)],
    // endpoint.o itself: a SYN always takes the new-connection path (no conntrack lookup),
    // so every run also rewrites its conntrack entry (an LRU update of an existing key).
    a_new_connection_ct_write: (s) => [s.prog, pkt(1100, DST, 80, TcpFlags.SYN)],
    b_established: (s) => [s.prog, est],
    c_service_dnat: (s) => [s.bench, pkt(2048, s.vip, 80, TcpFlags.SYN)],
    a_new_connection6: (s) => [s.bench, pkt6(1024, DST6, 80, TcpFlags.SYN)],
    b_established6: (s) => [s.prog, est6],
  }
  const runs = new Map<string, number[]>()
  for (let round = 0; round < ROUNDS; round++) {
    for (const [c, make] of Object.entries(repeatCases)) {
      for (const s of scales) {
        const [prog, data] = make(s)
        const key = `${c}/${s.name}`
        const list = runs.get(key) ?? []
        list.push((await prog.testRun({ data, repeat: 20_000 })).durationNs)
        runs.set(key, list)
      }
    }
  }
  // What one DNAT rewrite costs (the benchmark build undoes each DNAT with a second one):
  // probe_dnat_twice - probe_parse, halved; reported so that c_service_dnat can be read net.
  {
    const s = scales[0] as Setup
    const loader = await import('@membrane/bpf-loader-napi')
    const probe = loader.BpfObject.open(`${s.dp.objectDir}/tests/dp_probe.o`, {
      pinRoot: s.pins.path,
    })
    probe.setMaxEntries('mb_lb_maglev_direct', s.dp.maglevDirectTables)
    await probe.load()
    const data = pkt(3000, s.vip, 80, TcpFlags.SYN)
    const twice: number[] = []
    const parse: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      twice.push(
        (await probe.program('probe_dnat_twice').testRun({ data, repeat: 20_000 })).durationNs,
      )
      parse.push((await probe.program('probe_parse').testRun({ data, repeat: 20_000 })).durationNs)
    }
    probe.close()
    const one = Math.max(0, (median(twice) - median(parse)) / 2)
    reportFigure({
      name: 'ns_per_dnat_rewrite',
      value: Math.round(one),
      unit: 'ns',
      note: 'one DNAT with checksum updates; c_service_dnat includes one extra (the undo)',
    })
    for (const sc of scales) {
      const c = median(runs.get(`c_service_dnat/${sc.name}`) ?? [])
      reportFigure({
        name: 'ns_per_packet.c_service_dnat_net',
        value: Math.round(c - one),
        unit: 'ns',
        scale: sc.name,
        target: '<= 200',
      })
    }
  }
  // Where the time goes: building blocks of the program (bpf-src/tests/dp_probe.c), each a
  // whole BPF_PROG_TEST_RUN, so read them minus `nop` (the fixed cost of a run).
  for (const s of scales) {
    const loader = await import('@membrane/bpf-loader-napi')
    const probe = loader.BpfObject.open(`${s.dp.objectDir}/tests/dp_probe.o`, {
      pinRoot: s.pins.path,
    })
    probe.setMaxEntries('mb_lb_maglev_direct', s.dp.maglevDirectTables)
    await probe.load()
    const stages: Record<string, Buffer> = {
      probe_nop: pkt(1024, DST, 80, TcpFlags.SYN),
      probe_parse: pkt(1024, DST, 80, TcpFlags.SYN),
      probe_svc: pkt(1024, s.vip, 80, TcpFlags.SYN),
      probe_svc_select: pkt(1024, s.vip, 80, TcpFlags.SYN),
      probe_ct: pkt(1024, DST, 80, TcpFlags.SYN),
      probe_lxc: pkt(1024, DST, 80, TcpFlags.SYN),
      probe_ipcache: pkt(1024, DST, 80, TcpFlags.SYN),
      probe_policy: pkt(1024, DST, 80, TcpFlags.SYN),
      probe_lpm1: pkt(1024, DST, 80, TcpFlags.SYN),
    }
    const out = new Map<string, number[]>()
    for (let round = 0; round < ROUNDS; round++)
      for (const [name, data] of Object.entries(stages)) {
        const list = out.get(name) ?? []
        list.push((await probe.program(name).testRun({ data, repeat: 20_000 })).durationNs)
        out.set(name, list)
      }
    probe.close()
    for (const [name, list] of out)
      reportFigure({
        name: `stage_ns.${name.replace('probe_', '')}`,
        value: median(list),
        unit: 'ns',
        scale: s.name,
        note: 'one test run of a building block (dp_probe.c), fixed cost included: see nop',
      })
  }
  const singleCases: Record<string, (s: Setup, i: number) => Buffer> = {
    baseline_single: () => {
      const arp = Buffer.alloc(42)
      arp.writeUInt16BE(0x0806, 12)
      return arp
    },
    new_connection_single: (_s, i) => pkt(10000 + i, DST, 80, TcpFlags.SYN),
    established_single: () => est,
    service_new_connection_single: (s, i) => pkt(20000 + i, s.vip, 80, TcpFlags.SYN),
  }
  for (const [c, make] of Object.entries(singleCases)) {
    for (const s of scales) {
      const out: number[] = []
      for (let i = 0; i < SAMPLES; i++)
        out.push((await s.prog.testRun({ data: make(s, i) })).durationNs)
      runs.set(`${c}/${s.name}`, out)
    }
  }
  for (const c of [...Object.keys(repeatCases), ...Object.keys(singleCases)]) {
    const values: Record<string, number> = {}
    for (const s of scales) {
      const list = runs.get(`${c}/${s.name}`) ?? []
      values[s.name] = median(list)
      reportFigure({
        name: `ns_per_packet.${c}`,
        value: values[s.name] as number,
        unit: 'ns',
        scale: s.name,
        services: s.services,
        policyEntries: s.entries,
        ...(c.endsWith('_single')
          ? { samples: list.length }
          : { runs: list.length, repeat: 20_000, min: Math.min(...list) }),
        ...(c.endsWith('_single') ? {} : { target: '<= 200' }),
      })
    }
    reportFigure({
      name: `ratio_big_small.${c}`,
      value: Number(((values.big as number) / (values.small as number)).toFixed(3)),
      unit: 'x',
      ...(c.endsWith('_single') ? {} : { target: '<= 1.2' }),
    })
  }
} finally {
  for (const s of scales) {
    s.close()
    await s.dp.close()
    s.pins.remove()
  }
}
