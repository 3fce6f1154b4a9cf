import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { emptyState, StateStore } from './state'

describe('StateStore', () => {
  it('starts empty, saves and loads, leaving no temp files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mbstate-'))
    const store = new StateStore(dir)
    expect(store.load()).toEqual(emptyState())
    const s = emptyState()
    s.services.push({
      key: 'default/deathstar',
      name: 'deathstar',
      namespace: 'default',
      id: 1,
      vip: '10.96.0.10',
      port: 80,
      protocol: 'TCP',
      algorithm: 'maglev',
      targetPort: 80,
      backends: [],
      createdAt: 'now',
    })
    store.save(s)
    expect(new StateStore(dir).load()).toEqual(s)
    expect(readdirSync(dir)).toEqual(['state.json'])
  })
  it('refuses a corrupt file instead of starting empty over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mbstate-'))
    writeFileSync(join(dir, 'state.json'), '{"version": 1, "endpoints": [')
    expect(() => new StateStore(dir).load()).toThrow(/unreadable.*move it away/)
  })
})
