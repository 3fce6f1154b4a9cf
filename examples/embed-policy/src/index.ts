/**
 * Embedding @membrane/policy: what a CI check, an editor plugin or an agent does with it.
 *
 *   npm start -w @membrane/example-embed-policy
 */
import {
  type IdentityData,
  lookupMapState,
  PolicyError,
  PolicyRepository,
  parsePolicyDocuments,
  traceEndpointLabels,
} from '@membrane/policy'

const policy = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: rule1, namespace: default }
spec:
  endpointSelector: { matchLabels: { org: empire, class: deathstar } }
  ingress:
    - fromEndpoints: [ { matchLabels: { org: empire } } ]
      toPorts:
        - ports: [ { port: "80", protocol: TCP } ]
          rules: { http: [ { method: POST, path: /v1/request-landing } ] }
`

// 1. Validate (a CI check): errors carry the document, the field path and what was expected.
try {
  parsePolicyDocuments(policy.replace('"80"', '"80000"'))
} catch (e) {
  if (e instanceof PolicyError) console.log(`rejected: [${e.code}] ${e.message}`)
}

// 2. Trace (explain a verdict).
const repo = new PolicyRepository()
repo.upsert(parsePolicyDocuments(policy))
const deathstar = { namespace: 'default', labels: { org: 'empire', class: 'deathstar' } }
const tiefighter = { namespace: 'default', labels: { org: 'empire', class: 'tiefighter' } }
const xwing = { namespace: 'default', labels: { org: 'alliance', class: 'xwing' } }
for (const [name, src, http] of [
  [
    'tiefighter POST /v1/request-landing',
    tiefighter,
    { method: 'POST', path: '/v1/request-landing' },
  ],
  ['tiefighter PUT /v1/exhaust-port', tiefighter, { method: 'PUT', path: '/v1/exhaust-port' }],
  ['xwing POST /v1/request-landing', xwing, { method: 'POST', path: '/v1/request-landing' }],
] as const) {
  const r = repo.trace({ source: src, destination: deathstar, port: 80, protocol: 'TCP', http })
  console.log(`${name}: ${r.verdict} (${r.ingress.explanation})`)
}

// 3. Compile map state for the deathstar endpoint from the cluster's identities.
const ids: IdentityData[] = [
  { id: 1, labels: ['reserved:host'] },
  { id: 2, labels: ['reserved:world'] },
  { id: 1001, labels: traceEndpointLabels(deathstar) },
  { id: 1002, labels: traceEndpointLabels(tiefighter) },
  { id: 1003, labels: traceEndpointLabels(xwing) },
]
repo.updateIdentities(ids)
const endpoint = repo.endpointPolicy(
  { labels: traceEndpointLabels(deathstar) },
  { proxyPortFor: () => 15001 },
)
for (const e of endpoint.mapState.sorted())
  console.log('entry', JSON.stringify(e.key), JSON.stringify(e.value))
console.log(
  'xwing -> 80/TCP:',
  lookupMapState(endpoint.mapState, { identity: 1003, direction: 'ingress', protocol: 6, port: 80 })
    ? 'allow'
    : 'drop',
)

// 4. Follow changes as diffs (what the datapath applies): a new empire ship appears.
repo.updateIdentities([
  {
    id: 1004,
    labels: traceEndpointLabels({
      namespace: 'default',
      labels: { org: 'empire', class: 'shuttle' },
    }),
  },
])
const diff = endpoint.refresh()
console.log(
  'diff after a new identity:',
  JSON.stringify(diff.upserts.map((e) => e.key)),
  'deletes',
  diff.deletes.length,
)
endpoint.dispose()
