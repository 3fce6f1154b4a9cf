import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { defaultConfig, loadConfig, resolveConfig } from './config'

describe('config', () => {
  it('has the documented defaults', () => {
    const c = defaultConfig()
    expect(c.bpffsRoot).toBe('/sys/fs/bpf/membrane')
    expect(c.kvstore).toEqual({ type: 'memory' })
    expect(c.metricsPort).toBe(9962)
  })
  it('layers file under flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mbcfg-'))
    const file = join(dir, 'membrane.yaml')
    writeFileSync(
      file,
      'ipamPool: 10.50.0.0/16\nmetricsPort: 9000\nkvstore:\n  type: etcd\n  endpoints: [http://127.0.0.1:2379]\n',
    )
    const c = loadConfig({ file, flags: { metricsPort: '0', stateDir: undefined } })
    expect(c.ipamPool).toBe('10.50.0.0/16')
    expect(c.metricsPort).toBe(0)
    expect(c.kvstore).toEqual({ type: 'etcd', endpoints: ['http://127.0.0.1:2379'] })
  })
  it('names the field and the expectation on bad input', () => {
    expect(() => resolveConfig({ bogus: 1 })).toThrow(/config.bogus: unknown setting/)
    expect(() => resolveConfig({ stateDir: 'relative' })).toThrow(
      /config.stateDir: expected an absolute path/,
    )
    expect(() => resolveConfig({ metricsPort: 70000 })).toThrow(/port number/)
    expect(() => resolveConfig({ ipamPool: '10.0.0.1/8' })).toThrow(/host bits/)
    expect(() => resolveConfig({ kvstore: { type: 'etcd', endpoints: [] } })).toThrow(
      /kvstore.endpoints/,
    )
    expect(() => resolveConfig({ prefix: 'Bad!' })).toThrow(/config.prefix/)
    expect(() => resolveConfig({ logLevel: 'loud' })).toThrow(/logLevel/)
    expect(() => resolveConfig({ nodeLabels: ['zone'] })).toThrow(
      /config.nodeLabels: expected a list of key=value labels/,
    )
    expect(resolveConfig({ nodeLabels: 'zone=east,rack=r1' }).nodeLabels).toEqual([
      'zone=east',
      'rack=r1',
    ])
    expect(() => resolveConfig({ clusterName: '' })).toThrow(/config.clusterName/)
  })
  it('reports an unreadable or malformed file', () => {
    expect(() => loadConfig({ file: '/nonexistent/membrane.yaml' })).toThrow(
      /cannot read config file/,
    )
    const dir = mkdtempSync(join(tmpdir(), 'mbcfg-'))
    const file = join(dir, 'bad.yaml')
    writeFileSync(file, '- a\n- b\n')
    expect(() => loadConfig({ file })).toThrow(/mapping of settings/)
  })
  it('checks the cluster settings together, naming the field', () => {
    const etcd = { type: 'etcd', endpoints: ['http://127.0.0.1:2379'] }
    const ok = resolveConfig({
      kvstore: etcd,
      nodeName: 'node-1',
      nodeIP: '192.168.0.1',
      clusterPoolCidr: '10.100.0.0/16',
      clusterPoolMaskSize: '24',
      routingMode: 'native',
    })
    expect(ok).toMatchObject({
      clusterPoolMaskSize: 24,
      routingMode: 'native',
      nodeIP: '192.168.0.1',
    })
    expect(defaultConfig()).toMatchObject({ clusterPoolCidr: '', routingMode: 'tunnel' })
    // Node names become etcd keys: refused instead of rewritten, so two names never share a key.
    expect(() => resolveConfig({ kvstore: etcd, nodeName: 'node/1' })).toThrow(
      /config.nodeName: with kvstore etcd the node name is part of etcd keys/,
    )
    expect(resolveConfig({ nodeName: 'any name' }).nodeName).toBe('any name')
    expect(() =>
      resolveConfig({ clusterPoolCidr: '10.100.0.0/16', nodeIP: '192.168.0.1' }),
    ).toThrow(/config.clusterPoolCidr: a cluster keeps its state in etcd/)
    expect(() =>
      resolveConfig({ kvstore: etcd, nodeName: 'n1', clusterPoolCidr: '10.100.0.0/16' }),
    ).toThrow(/config.nodeIP: required with clusterPoolCidr/)
    const base = { kvstore: etcd, nodeName: 'n1', nodeIP: '192.168.0.1' }
    expect(() => resolveConfig({ ...base, clusterPoolCidr: '10.100.0.0/24' })).toThrow(
      /clusterPoolMaskSize: expected a length longer than the pool's \/24/,
    )
    expect(() => resolveConfig({ ...base, clusterPoolCidr: '127.0.0.0/8' })).toThrow(/loopback/)
    expect(() => resolveConfig({ ...base, nodeIP: '10.0.0.300' })).toThrow(
      /config.nodeIP: expected an IPv4/,
    )
    expect(() => resolveConfig({ ...base, routingMode: 'geneve' })).toThrow(/config.routingMode/)
    // A file and flags may each hold half of the cluster settings.
    const dir = mkdtempSync(join(tmpdir(), 'mbcfg-'))
    const file = join(dir, 'cluster.yaml')
    writeFileSync(
      file,
      'clusterPoolCidr: 10.100.0.0/16\nkvstore: { type: etcd, endpoints: [http://127.0.0.1:2379] }\n',
    )
    expect(loadConfig({ file, flags: { nodeIP: '192.168.0.9', nodeName: 'n9' } }).nodeIP).toBe(
      '192.168.0.9',
    )
  })
})
