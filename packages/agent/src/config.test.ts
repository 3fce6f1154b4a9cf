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
})
