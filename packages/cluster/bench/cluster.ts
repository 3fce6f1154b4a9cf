// Cluster control plane figures against a local etcd-server (started here on loopback).
// `npm run bench -- cluster`
//   propagation: an endpoint published on node A -> in node B's ipcache (p50/p99, 200 trials),
//     and the etcd writes one endpoint change costs;
//   scale: a writer process registers 100 nodes x 100 endpoints -> a control plane's ipcache
//     converges (live, through the watch; and cold, loading at start): time and RSS growth.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { IPCacheEvent } from '@membrane/identity'
import { IPCache } from '@membrane/identity'
import { createEtcdClient, EtcdIPCacheSync } from '@membrane/identity/etcd'
import { percentile, reportFigure, startEtcd } from '@membrane/test-utils'
import { NodeRegistry } from '../src/index'
import { controlPlane } from '../test/fixtures/control-plane'

const now = () => Number(process.hrtime.bigint()) / 1e6
const etcd = await startEtcd()
const admin = createEtcdClient({ endpoints: etcd.endpoint })
const revision = async () => Number((await admin.get('none').exec()).header.revision)
try {
  {
    const a = await controlPlane(etcd.endpoint, 'bench/prop', 'node-a', '192.168.70.1')
    const b = await controlPlane(etcd.endpoint, 'bench/prop', 'node-b', '192.168.70.2')
    const waiting = new Map<string, () => void>()
    b.ipcache.subscribe(
      (e: IPCacheEvent) => {
        if (e.type === 'upsert') waiting.get(e.prefix.cidr)?.()
      },
      { replay: false },
    )
    const trials = 200
    const ms: number[] = []
    const rev0 = await revision()
    for (let i = 0; i < trials; i++) {
      const cidr = `10.100.${i >> 8}.${(i & 255) + 1}/32`
      const seen = new Promise<void>((resolve) => waiting.set(cidr, resolve))
      const t0 = now()
      await a.sync.upsert(cidr, { identity: 300 + i })
      await seen
      ms.push(now() - t0)
      waiting.delete(cidr)
    }
    const writes = ((await revision()) - rev0) / trials
    reportFigure({
      name: 'cluster.propagation.endpoint.p50',
      value: +percentile(ms, 50).toFixed(2),
      unit: 'ms',
      trials,
    })
    reportFigure({
      name: 'cluster.propagation.endpoint.p99',
      value: +percentile(ms, 99).toFixed(2),
      unit: 'ms',
      trials,
      target: '<= 1000',
    })
    reportFigure({
      name: 'cluster.etcd.writes.per-endpoint',
      value: writes,
      unit: 'writes',
      target: 'O(1)',
    })
    await a.close()
    await b.close()
  }

  const nodes = Number(process.env.BENCH_NODES ?? 100)
  const perNode = Number(process.env.BENCH_ENDPOINTS ?? 100)
  const total = nodes * perNode
  const writer = (prefix: string) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          ...process.execArgv,
          fileURLToPath(new URL('./_writer.ts', import.meta.url)),
          etcd.endpoint,
          prefix,
          String(nodes),
          String(perNode),
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      )
      child.on('error', reject)
      child.on('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`writer exited ${code}`)),
      )
    })
  const gc = () => (globalThis as { gc?: () => void }).gc?.()

  // Live: the control plane runs; the writer registers everything; time until the ipcache
  // holds every entry and the registry every node.
  {
    const client = createEtcdClient({ endpoints: etcd.endpoint })
    const ipcache = new IPCache()
    gc()
    const rss0 = process.memoryUsage().rss
    const sync = await EtcdIPCacheSync.create({
      client,
      node: 'bench-agent',
      ipcache,
      prefix: 'bench/live/ip',
    })
    const registry = await NodeRegistry.join({
      client,
      name: 'bench-agent',
      nodeIP: '192.168.70.9',
      bootId: 'bench',
      clusterPoolCidr: '10.0.0.0/16',
      prefix: 'bench/live/cluster',
    })
    let done: () => void = () => {}
    const converged = new Promise<void>((r) => {
      done = r
    })
    const check = () => {
      if (ipcache.size >= total && registry.nodes().length >= nodes + 1) done()
    }
    ipcache.subscribe(check, { replay: false })
    registry.subscribe(check, { replay: false })
    const t0 = now()
    await writer('bench/live')
    const written = now() - t0
    await converged
    const ms = now() - t0
    gc()
    reportFigure({
      name: 'cluster.scale.live.converged',
      value: Math.round(ms),
      unit: 'ms',
      nodes,
      endpointsPerNode: perNode,
      entries: total,
      writerMs: Math.round(written),
    })
    // The writer (one process, 64 puts in flight) bounds the total; the lag after its last
    // write is what the control plane adds.
    reportFigure({
      name: 'cluster.scale.live.lag-after-last-write',
      value: Math.round(ms - written),
      unit: 'ms',
      entries: total,
    })
    reportFigure({
      name: 'cluster.scale.live.rss-growth',
      value: Math.round((process.memoryUsage().rss - rss0) / 2 ** 20),
      unit: 'MiB',
      entries: total,
    })
    await sync.close()
    await registry.close()
    client.close()
  }

  // Cold: everything is in etcd; a control plane starts and loads it.
  {
    await writer('bench/cold')
    const client = createEtcdClient({ endpoints: etcd.endpoint })
    const ipcache = new IPCache()
    const t0 = now()
    const sync = await EtcdIPCacheSync.create({
      client,
      node: 'bench-agent',
      ipcache,
      prefix: 'bench/cold/ip',
    })
    const ms = now() - t0
    reportFigure({
      name: 'cluster.scale.cold.loaded',
      value: Math.round(ms),
      unit: 'ms',
      entries: ipcache.size,
    })
    await sync.close()
    client.close()
  }
} finally {
  admin.close()
  await etcd.stop()
}
