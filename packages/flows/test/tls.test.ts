import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { describeKernel, run } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { EventType, encodeEvent } from '../src/event'
import { ObserverClient } from '../src/grpc'
import { FlowObserver } from '../src/observer'
import { type ObserverServer, startObserverServer } from '../src/server'

describeKernel('Observer server over TLS', ['bin:openssl'], () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-flows-tls-'))
  let server: ObserverServer
  let ca: Buffer
  beforeAll(async () => {
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ])
    ca = readFileSync(join(dir, 'cert.pem'))
    const observer = new FlowObserver({ nodeName: 'tls-node' })
    observer.ingestEvent(
      encodeEvent({ type: EventType.DROP, subtype: 133, saddr: '10.0.0.1', daddr: '10.0.0.2' }),
    )
    server = await startObserverServer(observer, {
      address: 'localhost:0',
      tls: { key: readFileSync(join(dir, 'key.pem')), cert: ca },
    })
  })
  afterAll(async () => {
    await server?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('a TLS client reads flows; a plaintext client cannot', async () => {
    const client = new ObserverClient(server.target, grpc.credentials.createSsl(ca))
    const got = []
    for await (const r of client.getFlows({})) got.push(r)
    client.close()
    expect(got).toHaveLength(1)
    expect(got[0]?.flow?.dropReasonDesc).toBe(133)
    const plain = new ObserverClient(server.target)
    await expect(plain.serverStatus()).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE })
    plain.close()
  })
})
