/**
 * Truth tables from the Kubernetes network-policy e2e model (namespaces x/y/z, pods a/b/c,
 * ports 80/81, TCP/UDP/SCTP). Each case states the expected reachability matrix in its own
 * words; checkReachability() verifies it with trace() and with map state.
 */
import { describe, expect, it } from 'vitest'
import { PolicyRepository, parsePolicyDocuments } from '../src/index'
import { allowAll, checkReachability, netpol, nsOf, type PodName, podIp, podOf } from './_model'

function repoWith(...yaml: string[]): PolicyRepository {
  const repo = new PolicyRepository()
  repo.upsert(parsePolicyDocuments(yaml.join('\n---\n')))
  return repo
}
const TCP80 = { port: 80, protocol: 'TCP' } as const
const TCP81 = { port: 81, protocol: 'TCP' } as const
const UDP80 = { port: 80, protocol: 'UDP' } as const
const UDP81 = { port: 81, protocol: 'UDP' } as const
const SCTP81 = { port: 81, protocol: 'SCTP' } as const
const isXa = (p: PodName) => p === 'x/a'

describe('Kubernetes NetworkPolicy semantics (upstream e2e model)', () => {
  it('no policy: everything reaches everything', () => {
    checkReachability(new PolicyRepository(), TCP80, allowAll)
  })

  it("supports a 'default-deny-ingress' policy", () => {
    const repo = repoWith(
      netpol('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }),
    )
    for (const probe of [TCP80, UDP81]) checkReachability(repo, probe, (_f, t) => nsOf(t) !== 'x')
  })

  it("supports a 'default-deny-all' policy", () => {
    const repo = repoWith(
      netpol('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    )
    checkReachability(repo, TCP80, (f, t) => nsOf(f) !== 'x' && nsOf(t) !== 'x')
  })

  it('allows traffic from pods within the server namespace based on PodSelector', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || f === 'x/b')
  })

  it('enforces NamespaceSelector with MatchExpressions', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [
              {
                namespaceSelector: {
                  matchExpressions: [{ key: 'ns', operator: 'In', values: ['y'] }],
                },
              },
            ],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || nsOf(f) === 'y')
  })

  it('enforces PodSelector OR NamespaceSelector (two peers)', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [
              {
                namespaceSelector: {
                  matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }],
                },
              },
              { podSelector: { matchLabels: { pod: 'b' } } },
            ],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || nsOf(f) !== 'x' || f === 'x/b')
  })

  it('enforces PodSelector AND NamespaceSelector (one peer)', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [
              {
                namespaceSelector: {
                  matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }],
                },
                podSelector: { matchLabels: { pod: 'b' } },
              },
            ],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || f === 'y/b' || f === 'z/b')
  })

  it('enforces multiple PodSelector and NamespaceSelector expressions', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [
              {
                namespaceSelector: {
                  matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }],
                },
                podSelector: {
                  matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }],
                },
              },
            ],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || (nsOf(f) !== 'x' && podOf(f) !== 'a'))
  })

  it('enforces any of several PodSelectors', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [
              { podSelector: { matchLabels: { pod: 'b' } } },
              { podSelector: { matchLabels: { pod: 'c' } } },
            ],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || f === 'x/b' || f === 'x/c')
  })

  it('allows traffic only from a different namespace (NamespaceSelector matchLabels)', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || nsOf(f) === 'y')
  })

  it('uses the default kubernetes.io/metadata.name namespace label', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || nsOf(f) === 'y')
  })

  it('allows ingress from pods in all namespaces (empty namespaceSelector)', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: {} }] }],
      }),
    )
    checkReachability(repo, TCP80, allowAll)
  })

  it('enforces policy based on Ports', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }],
            ports: [{ port: 81, protocol: 'TCP' }],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (_f, t) => !isXa(t))
    checkReachability(repo, TCP81, (f, t) => !isXa(t) || nsOf(f) === 'y')
  })

  it('enforces multiple, stacked policies with overlapping podSelectors', () => {
    const repo = repoWith(
      netpol('x', 'p1', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }],
            ports: [{ port: 81, protocol: 'TCP' }],
          },
        ],
      }),
      netpol('x', 'p2', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }],
            ports: [{ port: 80, protocol: 'TCP' }],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || nsOf(f) === 'z')
    checkReachability(repo, TCP81, (f, t) => !isXa(t) || nsOf(f) === 'y')
  })

  it('supports an allow-all policy', () => {
    const repo = repoWith(netpol('x', 'allow-all', { podSelector: {}, ingress: [{}] }))
    checkReachability(repo, TCP80, allowAll)
    checkReachability(repo, UDP81, allowAll)
  })

  it('allows ingress on one named port', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ port: 'serve-81-tcp' }] }],
      }),
    )
    checkReachability(repo, TCP81, allowAll)
    checkReachability(repo, TCP80, (_f, t) => !isXa(t))
  })

  it('allows ingress from a namespace on one named port', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }],
            ports: [{ port: 'serve-80-tcp' }],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || nsOf(f) === 'y')
    checkReachability(repo, TCP81, (_f, t) => !isXa(t))
  })

  it('allows egress on one named port (resolved at the destination)', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ ports: [{ port: 'serve-80-tcp' }] }],
      }),
    )
    checkReachability(repo, TCP80, allowAll)
    checkReachability(repo, TCP81, (f) => !isXa(f))
  })

  it('defaults an empty policyTypes like a missing one (Ingress, plus Egress with egress rules)', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: [],
        egress: [{ ports: [{ port: 81 }] }],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) && !isXa(f))
  })

  it('matches Kubernetes labels only (source k8s), as Cilium translates NetworkPolicy', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }] }],
      }),
    )
    const target = { namespace: 'x', labels: { pod: 'a' } }
    const k8sClient = { identityLabels: ['k8s:role=client', 'k8s:io.kubernetes.pod.namespace=x'] }
    const containerClient = {
      identityLabels: ['container:role=client', 'k8s:io.kubernetes.pod.namespace=x'],
    }
    expect(repo.trace({ source: k8sClient, destination: target, port: 80 }).verdict).toBe('allowed')
    expect(repo.trace({ source: containerClient, destination: target, port: 80 }).verdict).toBe(
      'denied',
    )
  })

  it('denies egress from pods based on PodSelector', () => {
    const repo = repoWith(
      netpol('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'] }),
    )
    checkReachability(repo, TCP80, (f) => !isXa(f))
  })

  it('works with Ingress and Egress specified together', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
        egress: [{ to: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => (!isXa(t) || f === 'x/b') && (!isXa(f) || t === 'x/b'))
  })

  it('denies egress on the client side even if the server allows it', () => {
    const repo = repoWith(
      netpol('y', 'allow-all', { podSelector: {}, ingress: [{}] }),
      netpol('x', 'deny-egress', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
      }),
    )
    checkReachability(repo, TCP80, (f) => !isXa(f))
  })

  it('allows egress to a server in another namespace by PodSelector AND NamespaceSelector', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [
              {
                namespaceSelector: { matchLabels: { ns: 'y' } },
                podSelector: { matchLabels: { pod: 'a' } },
              },
            ],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(f) || t === 'y/a')
  })

  it('allows any port on a specific protocol', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ protocol: 'TCP' }] }],
      }),
    )
    checkReachability(repo, TCP80, allowAll)
    checkReachability(repo, TCP81, allowAll)
    checkReachability(repo, UDP80, (_f, t) => !isXa(t))
  })

  it('does not treat SCTP or UDP as TCP', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ port: 81, protocol: 'TCP' }] }],
      }),
    )
    checkReachability(repo, TCP81, allowAll)
    checkReachability(repo, UDP81, (_f, t) => !isXa(t))
    checkReachability(repo, SCTP81, (_f, t) => !isXa(t))
  })

  it('lets an ingress allow-all policy take precedence over a narrower one', () => {
    const repo = repoWith(
      netpol('x', 'narrow', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ port: 80 }] }],
      }),
      netpol('x', 'all', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{}] }),
    )
    checkReachability(repo, TCP81, allowAll)
  })

  it('lets an egress allow-all policy take precedence over a narrower one', () => {
    const repo = repoWith(
      netpol('x', 'narrow', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ ports: [{ port: 80 }] }],
      }),
      netpol('x', 'all', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{}],
      }),
    )
    checkReachability(repo, TCP81, allowAll)
  })

  it('stops enforcing policies after they are deleted', () => {
    const repo = repoWith(
      netpol('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    )
    checkReachability(repo, TCP80, (f, t) => nsOf(f) !== 'x' && nsOf(t) !== 'x')
    repo.delete('NetworkPolicy/x/deny-all')
    checkReachability(repo, TCP80, allowAll)
  })

  it('enforces updated policy', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || f === 'x/b')
    repo.upsert(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'c' } } }] }],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || f === 'x/c')
  })

  it('allows egress to a server in a CIDR block (ipBlock matches pod IPs)', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: `${podIp('x/b')}/32` } }] }],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(f) || t === 'x/b')
  })

  it('enforces the except clause of an egress CIDR block', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '192.168.0.0/16', except: [`${podIp('x/b')}/32`] } }] }],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(f) || t !== 'x/b')
  })

  it('allows an IP that overlaps one ipBlock CIDR and another ipBlock except', () => {
    const repo = repoWith(
      netpol('x', 'p1', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '192.168.0.0/16', except: [`${podIp('x/b')}/32`] } }] }],
      }),
      netpol('x', 'p2', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: `${podIp('x/b')}/32` } }] }],
      }),
    )
    checkReachability(repo, TCP80, allowAll)
  })

  it('allows ingress on a port range (endPort)', () => {
    const repo = repoWith(
      netpol('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }],
            ports: [{ port: 80, endPort: 81, protocol: 'TCP' }],
          },
        ],
      }),
    )
    checkReachability(repo, TCP80, (f, t) => !isXa(t) || nsOf(f) === 'y')
    checkReachability(repo, TCP81, (f, t) => !isXa(t) || nsOf(f) === 'y')
    checkReachability(repo, UDP80, (_f, t) => !isXa(t))
  })

  it('controls ingress and egress independently', () => {
    const repo = repoWith(
      netpol('x', 'ingress', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }] }],
      }),
      netpol('x', 'egress', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ podSelector: { matchLabels: { pod: 'c' } } }] }],
      }),
    )
    checkReachability(
      repo,
      UDP80,
      (f, t) => (!isXa(t) || nsOf(f) === 'z') && (!isXa(f) || t === 'x/c'),
    )
  })
})
