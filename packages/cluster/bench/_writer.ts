// The lightweight writer of the scale bench, a process of its own (so the control plane's RSS
// is measured alone): registers N simulated nodes and M endpoints per node in etcd, records
// only, as the agents of those nodes would publish them.
//   tsx bench/_writer.ts <endpoint> <prefix> <nodes> <endpointsPerNode>
import { Etcd3 } from 'etcd3'

const [endpoint, prefix, nodesArg, perNodeArg] = process.argv.slice(2)
const nodes = Number(nodesArg)
const perNode = Number(perNodeArg)
const client = new Etcd3({ hosts: endpoint as string })
const lease = client.lease(60)
await lease.grant()
const puts: (() => Promise<unknown>)[] = []
for (let n = 0; n < nodes; n++) {
  const nodeIP = `172.16.${n >> 8}.${n & 255}`
  const name = `sim-${n}`
  puts.push(() =>
    lease
      .put(`${prefix}/cluster/nodes/${name}`)
      .value(
        JSON.stringify({
          name,
          nodeIP,
          podCidr: `10.${64 + (n >> 8)}.${n & 255}.0/24`,
          bootId: `sim-${n}`,
          routingMode: 'tunnel',
          health: 'ready',
          registeredAt: new Date().toISOString(),
        }),
      )
      .exec(),
  )
  for (let e = 0; e < perNode; e++) {
    const cidr = `10.${64 + (n >> 8)}.${n & 255}.${e + 2}/32`
    const value = JSON.stringify({
      cidr,
      identity: 256 + (e % 500),
      tunnelEndpoint: nodeIP,
      node: name,
    })
    puts.push(() => lease.put(`${prefix}/ip/default/${cidr}`).value(value).exec())
  }
}
// 64 writes in flight: as many agents publishing at once.
let next = 0
await Promise.all(
  Array.from({ length: 64 }, async () => {
    while (next < puts.length) await (puts[next++] as () => Promise<unknown>)()
  }),
)
process.stdout.write(`${JSON.stringify({ written: puts.length })}\n`)
lease.release()
client.close()
