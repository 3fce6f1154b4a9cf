import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AgentConfig } from '../src/config'

/**
 * A configuration private to one bench process (prefix `tag` + pid, its own dirs, bpffs root
 * and pool); `dir` is the temporary directory to remove at the end.
 */
export function benchConfig(tag: string): { config: Partial<AgentConfig>; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mbbench-'))
  return {
    dir,
    config: {
      prefix: `${tag}${(process.pid % 1296).toString(36)}`,
      stateDir: join(dir, 'state'),
      socketPath: join(dir, 'run', 'api.sock'),
      bpffsRoot: `/sys/fs/bpf/mbbench-${process.pid}`,
      ipamPool: `10.${200 + (process.pid % 8)}.0.0/16`,
      metricsPort: 0,
      logLevel: 'silent',
    },
  }
}

/** One valid CiliumNetworkPolicy (about 350 bytes) selecting `app: svc-<i>`. */
export function cnp(i: number, name = 'bench'): string {
  return `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}-${i}
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: svc-${i}
  ingress:
    - fromEndpoints:
        - matchLabels:
            role: client-${i}
      toPorts:
        - ports:
            - port: "${8000 + (i % 1000)}"
              protocol: TCP
`
}

/** Valid policies joined into YAML text of about `chars` characters (a 4 MB import). */
export function bigPolicyText(chars: number, name = 'big'): string {
  const parts: string[] = []
  let size = 0
  for (let i = 0; size < chars; i++) {
    const t = cnp(i, name)
    parts.push(t)
    size += t.length + 4
  }
  return parts.join('---\n')
}
