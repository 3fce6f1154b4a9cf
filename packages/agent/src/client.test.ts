import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { AgentClient } from './client'

describe('AgentClient connection errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-agent-client-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('says the socket directory does not exist (not "permission denied")', async () => {
    const socket = join(dir, 'missing', 'membrane.sock')
    const error = await new AgentClient(socket).get('/v1/status').catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'UNAVAILABLE' })
    expect((error as Error).message).toContain(
      `the directory ${join(dir, 'missing')} does not exist`,
    )
  })

  it('says no agent is listening when the directory exists but the socket does not', async () => {
    const error = await new AgentClient(join(dir, 'membrane.sock'))
      .get('/v1/status')
      .catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'UNAVAILABLE' })
    expect((error as Error).message).toMatch(/no agent is listening on .*membrane\.sock/)
  })

  it('streams report the missing directory the same way', async () => {
    const socket = join(dir, 'gone', 'membrane.sock')
    const { done } = new AgentClient(socket).stream('/v1/monitor', () => {})
    await expect(done).rejects.toThrow(`the directory ${join(dir, 'gone')} does not exist`)
  })
})
