/**
 * A synthetic cluster for the policy benchmarks: 20 namespaces, 5,000 pod identities, 1,000
 * rules of every common shape (L3, L3+L4, port ranges, entities, CIDR, deny, L7 HTTP, egress).
 */
import type { IdentityData } from '../src/index'

const NAMESPACES = 20
const APPS = 50

export function podLabels(i: number): string[] {
  const ns = `ns${i % NAMESPACES}`
  const app = `app${Math.floor(i / NAMESPACES) % APPS}`
  return [
    `k8s:app=${app}`,
    `k8s:version=v${Math.floor(i / (NAMESPACES * APPS)) % 5}`,
    `k8s:tier=${['web', 'api', 'db', 'cache'][i % 4]}`,
    `k8s:io.kubernetes.pod.namespace=${ns}`,
    `k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=${ns}`,
    `k8s:io.cilium.k8s.namespace.labels.team=team${i % 7}`,
    `k8s:io.cilium.k8s.policy.serviceaccount=sa${i % 13}`,
  ]
}

export function identities(n: number): IdentityData[] {
  const out: IdentityData[] = [
    { id: 1, labels: ['reserved:host'] },
    { id: 2, labels: ['reserved:world'] },
    { id: 6, labels: ['reserved:remote-node'] },
    { id: 7, labels: ['reserved:kube-apiserver'] },
  ]
  for (let i = 0; i < 40; i++)
    out.push({ id: 16777216 + i + 1, labels: [`cidr:10.${i}.0.0/16`, 'reserved:world'] })
  for (let i = 0; i < n - out.length + 4 + 40 - 44; i++)
    out.push({ id: 1000 + i, labels: podLabels(i) })
  return out.slice(0, n)
}

function rule(i: number): unknown {
  const ns = `ns${i % NAMESPACES}`
  const app = (k: number) => `app${k % APPS}`
  const kind = i % 10
  const spec: Record<string, unknown> = { endpointSelector: { matchLabels: { app: app(i) } } }
  switch (kind) {
    case 0:
    case 1:
      spec.ingress = [
        {
          fromEndpoints: [{ matchLabels: { app: app(i + 1) } }],
          toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }],
        },
      ]
      break
    case 2:
      spec.ingress = [
        {
          fromEndpoints: [
            { matchLabels: { tier: 'web' } },
            { matchExpressions: [{ key: 'version', operator: 'In', values: ['v0', 'v1'] }] },
          ],
        },
      ]
      break
    case 3:
      spec.ingress = [
        {
          fromEndpoints: [
            {
              matchLabels: {
                app: app(i + 3),
                'k8s:io.kubernetes.pod.namespace': `ns${(i + 1) % NAMESPACES}`,
              },
            },
          ],
          toPorts: [{ ports: [{ port: '8000', endPort: 8100, protocol: 'TCP' }] }],
        },
      ]
      break
    case 4:
      spec.ingress = [
        { fromEntities: ['host', 'remote-node'] },
        { fromEntities: ['world'], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] },
      ]
      break
    case 5:
      spec.egress = [
        {
          toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'ns0', tier: 'db' } }],
          toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }],
        },
        { toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.3.0.0/16'] }] },
      ]
      break
    case 6:
      spec.ingressDeny = [{ fromEndpoints: [{ matchLabels: { app: app(i + 7) } }] }]
      spec.ingress = [{ toPorts: [{ ports: [{ port: '9090', protocol: 'TCP' }] }] }]
      break
    case 7:
      spec.ingress = [
        {
          fromEndpoints: [{ matchLabels: { app: app(i + 2) } }],
          toPorts: [
            {
              ports: [{ port: '80', protocol: 'TCP' }],
              rules: {
                http: [
                  { method: 'GET', path: '/api/.*' },
                  { method: 'POST', path: '/api/v1/items' },
                ],
              },
            },
          ],
        },
      ]
      break
    case 8:
      spec.egress = [
        { toEntities: ['kube-apiserver'] },
        {
          toEndpoints: [{ matchLabels: { app: app(i + 5) } }],
          toPorts: [{ ports: [{ port: '8080', protocol: 'ANY' }] }],
        },
      ]
      break
    case 9:
      spec.ingress = [
        {
          fromEndpoints: [
            { matchLabels: { 'io.cilium.k8s.namespace.labels.team': `team${i % 7}` } },
          ],
          toPorts: [
            {
              ports: [
                { port: '53', protocol: 'UDP' },
                { port: '53', protocol: 'TCP' },
              ],
            },
          ],
        },
      ]
      break
  }
  // Every 20th rule is cluster-wide with broad selectors (hundreds of identities per selector).
  if (i % 20 === 19) {
    const tier = ['web', 'api', 'db', 'cache'][i % 4] as string
    const ccnp = {
      endpointSelector: { matchLabels: { tier } },
      ingress: [
        {
          fromEndpoints: [
            { matchLabels: { 'io.cilium.k8s.namespace.labels.team': `team${i % 7}` } },
          ],
          toPorts: [{ ports: [{ port: String(8000 + (i % 100)), protocol: 'TCP' }] }],
        },
      ],
    }
    return {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumClusterwideNetworkPolicy',
      metadata: { name: `ccnp-${i}` },
      spec: ccnp,
    }
  }
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: `rule-${i}`, namespace: ns },
    spec,
  }
}

export function rulesYaml(n: number, offset = 0): string {
  return Array.from({ length: n }, (_, i) => JSON.stringify(rule(i + offset))).join('\n---\n')
}
