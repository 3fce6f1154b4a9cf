/**
 * FqdnPolicyUpdater with a real @membrane/policy repository: learned IPs become CIDR identities
 * that the toFQDNs selector selects (a map-state entry appears), expiry takes them away.
 */
import { PolicyRepository, parsePolicyDocuments } from '@membrane/policy'
import { describe, expect, it } from 'vitest'
import { FqdnPolicyUpdater } from '../src/index'

const POLICY = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: fqdn, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: client } }
  egress:
    - toFQDNs: [{ matchPattern: "*.example.test" }]
      toPorts: [{ ports: [{ port: "443", protocol: TCP }] }]
`
const NS = 'k8s:io.kubernetes.pod.namespace=default'

describe('FqdnPolicyUpdater', () => {
  it('learn: CIDR identity, ipcache, selection and map diff before it resolves; expire: reverse', async () => {
    const repo = new PolicyRepository()
    repo.upsert(parsePolicyDocuments(POLICY))
    repo.updateIdentities([{ id: 1001, labels: ['k8s:app=client', NS] }])
    const tracked = repo.endpointPolicy({ labels: ['k8s:app=client', NS] })
    const ipcache = new Map<string, number>()
    const applied: string[][] = []
    const released: number[] = []
    let next = 1
    const labelsSeen: string[][] = []
    const fqdn = new FqdnPolicyUpdater({
      policy: repo,
      allocateCidrIdentity: async (_ip, labels) => {
        labelsSeen.push(labels)
        return (1 << 24) | next++
      },
      releaseCidrIdentity: (_ip, id) => void released.push(id),
      ipcacheUpsert: (p, id) => void ipcache.set(p, id),
      ipcacheDelete: (p) => void ipcache.delete(p),
      applyPolicy: () => {
        const d = tracked.refresh()
        applied.push([
          ...[...d.upserts].map((e) => `+${e.key.identity}/${e.key.port}`),
          ...d.deletes.map((k) => `-${k.identity}`),
        ])
      },
    })
    const allowed = (id: number) =>
      [...tracked.mapState].some(
        (e) => e.key.identity === id && e.key.port === 443 && !e.value.deny,
      )

    await fqdn.onLearn({
      name: 'api.example.test',
      ips: ['10.9.0.1', '10.9.0.2'],
      cnames: [],
      ttl: 60,
      answerTtl: 60,
      endpointId: 1,
      srcIdentity: 1001,
    })
    const a = fqdn.identityOf('10.9.0.1') as number
    const b = fqdn.identityOf('10.9.0.2') as number
    expect(ipcache).toEqual(
      new Map([
        ['10.9.0.1/32', a],
        ['10.9.0.2/32', b],
      ]),
    )
    expect(labelsSeen[0]).toEqual(expect.arrayContaining(['cidr:10.9.0.1/32', 'reserved:world']))
    expect(allowed(a) && allowed(b)).toBe(true)
    expect(applied.at(-1)).toEqual(expect.arrayContaining([`+${a}/443`, `+${b}/443`]))

    // A second name for one IP: the IP stays until both names expire.
    await fqdn.onLearn({
      name: 'www.example.test',
      ips: ['10.9.0.1'],
      cnames: [],
      ttl: 60,
      answerTtl: 60,
      endpointId: 1,
      srcIdentity: 1001,
    })
    expect(fqdn.identityOf('10.9.0.1')).toBe(a)
    await fqdn.onExpire([{ name: 'api.example.test', ips: ['10.9.0.1', '10.9.0.2'] }])
    expect(allowed(b)).toBe(false)
    expect(allowed(a)).toBe(true)
    expect(ipcache.has('10.9.0.2/32')).toBe(false)
    expect(released).toEqual([b])
    await fqdn.onExpire([{ name: 'www.example.test', ips: ['10.9.0.1'] }])
    expect(allowed(a)).toBe(false)
    expect(ipcache.size).toBe(0)
    expect(released).toEqual([b, a])
  })

  it('a name outside every toFQDNs selector gets no identity and no policy entry', async () => {
    const repo = new PolicyRepository()
    repo.upsert(parsePolicyDocuments(POLICY))
    const tracked = repo.endpointPolicy({ labels: ['k8s:app=client', NS] })
    const fqdn = new FqdnPolicyUpdater({
      policy: repo,
      allocateCidrIdentity: () => {
        throw new Error('no identity should be needed')
      },
      ipcacheUpsert: () => {},
      applyPolicy: () => void tracked.refresh(),
    })
    await fqdn.onLearn({
      name: 'other.test',
      ips: ['10.9.9.9'],
      cnames: [],
      ttl: 60,
      answerTtl: 60,
      endpointId: 1,
      srcIdentity: 1001,
    })
    expect(fqdn.identityOf('10.9.9.9')).toBeUndefined()
    expect([...tracked.mapState].some((e) => e.key.identity >= 1 << 24)).toBe(false)
  })
})
