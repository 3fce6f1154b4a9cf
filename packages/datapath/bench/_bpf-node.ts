/**
 * The Membrane side of the kube-proxy comparison, run inside the "node" network namespace
 * (`ip netns exec <node> node ... _bpf-node.ts <pinRoot>`) so that it attaches to that
 * namespace's veths. Reads one JSON command per stdin line, answers `ok` or `error: ...`.
 */
import { createInterface } from 'node:readline'
import { ensureBpffs, tempBpffsDir } from '@membrane/test-utils'
import { Datapath } from '../src'

interface Ep {
  id: number
  ifname: string
  ip: string
  mac: string
  identity: number
}

// `ip netns exec` gives this process its own mount namespace with a fresh /sys: mount a
// bpffs of our own there; the pins go away with this process.
ensureBpffs()
const pins = tempBpffsDir()
const dp = await Datapath.open({ pinRoot: pins.path, events: { traceNew: false, verdicts: false } })
const attached: number[] = []
let services = 0

const rl = createInterface({ input: process.stdin })
for await (const line of rl) {
  if (!line.trim()) continue
  try {
    const cmd = JSON.parse(line) as
      | { cmd: 'attach'; endpoints: Ep[]; allowIdentity: number }
      | { cmd: 'services'; n: number; backends: { address: string; port: number }[] }
      | { cmd: 'detach' }
      | { cmd: 'close' }
    if (cmd.cmd === 'attach') {
      for (const ep of cmd.endpoints) {
        await dp.attachEndpoint(ep)
        dp.ipcache.upsert(`${ep.ip}/32`, ep.identity)
        // Policy is enforced: every endpoint allows the bench identity both ways.
        dp.policyMap(ep.id).apply({
          upserts: [
            {
              key: {
                identity: cmd.allowIdentity,
                direction: 'ingress',
                protocol: 0,
                port: 0,
                portPrefixLen: 0,
              },
              value: { deny: false },
            },
            {
              key: {
                identity: cmd.allowIdentity,
                direction: 'egress',
                protocol: 0,
                port: 0,
                portPrefixLen: 0,
              },
              value: { deny: false },
            },
          ],
        })
        attached.push(ep.id)
      }
    } else if (cmd.cmd === 'services') {
      for (; services < cmd.n; services++)
        dp.services.upsert({ address: vipOf(services), port: 80, backends: cmd.backends })
    } else if (cmd.cmd === 'detach') {
      for (const id of attached.splice(0)) await dp.detachEndpoint(id, { keepPolicy: true })
      dp.ct.flush()
    } else if (cmd.cmd === 'close') {
      await dp.close()
      pins.remove()
      process.stdout.write('ok\n')
      process.exit(0)
    }
    process.stdout.write('ok\n')
  } catch (error) {
    process.stdout.write(`error: ${(error as Error).message.replace(/\n/g, ' ')}\n`)
  }
}

/** Service i's ClusterIP (shared with kubeproxy.ts). */
function vipOf(i: number): string {
  return `10.97.${(i >> 8) & 255}.${i & 255}`
}
