// The explorer's one computation, shared by the CLI and the page: build a table, change one
// backend, and report what moved and where a few flows land.
import {
  analyze,
  type Backend,
  buildLookupTable,
  diffTables,
  disruption,
  lookupBackend,
} from '@membrane/maglev'

export interface Scenario {
  backends: number
  tableSize: number
  /** Weight of backend 1 (the others have weight 1). */
  heavyWeight: number
  /** Which backend id to remove in the "after" table. */
  remove: number
}

export interface Report {
  lines: string[]
}

export function explore(s: Scenario): Report {
  const backends: Backend[] = Array.from({ length: s.backends }, (_, i) => ({
    id: i + 1,
    address: `10.96.${i >> 8}.${i & 255}`,
    port: 8080,
    weight: i === 0 ? s.heavyWeight : 1,
  }))
  const before = buildLookupTable(backends, { tableSize: s.tableSize })
  const after = buildLookupTable(
    backends.filter((b) => b.id !== s.remove),
    { tableSize: s.tableSize },
  )
  const a = analyze(before, backends)
  const diff = diffTables(before, after)
  const weightSum = backends.reduce((sum, b) => sum + (b.weight ?? 1), 0)
  const perBackend = Math.floor(weightSum / s.backends)
  const lines = [
    `M = ${s.tableSize}, N = ${s.backends}, backend 1 weight ${s.heavyWeight}`,
    `weights ${perBackend > 1 ? 'apply' : 'are ignored'}: Σw/N = ${weightSum}/${s.backends} = ${perBackend} (Cilium weighs only when > 1)`,
    `slots per backend: min ${a.minSlots}, max ${a.maxSlots}, imbalance ${a.imbalance.toFixed(3)}`,
    `backend 1 owns ${a.slots.get(1)} slots (ideal ${a.expected?.get(1)?.toFixed(1)})`,
    `worst deviation from M·w/Σw: ${((a.maxDeviation ?? 0) * 100).toFixed(3)}% of M`,
    `removing backend ${s.remove}: ${diff.slots.length} slots to rewrite (${((diff.slots.length / s.tableSize) * 100).toFixed(2)}% of the table)`,
    `moved between surviving backends: ${(disruption(before, after) * 100).toFixed(2)}% of their slots`,
  ]
  for (const sport of [40000, 40001, 40002]) {
    const flow = { saddr: '192.0.2.10', sport, dport: 80, protocol: 'TCP' as const }
    lines.push(
      `flow 192.0.2.10:${sport} -> :80/TCP: backend ${lookupBackend(before, flow)} before, ${lookupBackend(after, flow)} after`,
    )
  }
  return { lines }
}
