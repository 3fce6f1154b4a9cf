import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { describeKernel, killAndWait, run } from '@membrane/test-utils'
import { type Browser, chromium } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { testConfig } from './helpers'

const fixture = (name: string) => join(import.meta.dirname, 'fixtures', name)
const POLICY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: rule1
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      class: deathstar
  ingress:
    - fromEndpoints:
        - matchLabels:
            org: empire
      toPorts:
        - ports:
            - port: "7000"
              protocol: TCP
`

describeKernel(
  'web UI in headless Chromium',
  ['root', 'netns', 'bpf', 'tc', 'bin:chromium'],
  () => {
    const { config, cleanupDirs } = testConfig()
    let daemon: AgentDaemon
    let browser: Browser | undefined
    let server: ChildProcess | undefined

    beforeAll(async () => {
      daemon = await startDaemon({ config })
      const client = new AgentClient(config.socketPath)
      const status = await client.get<AgentStatus>('/v1/status')
      expect(status.components.datapath?.state, status.components.datapath?.detail).toBe('ok')
      const ep: Record<string, EndpointView> = {}
      for (const [name, labels] of [
        ['deathstar', { org: 'empire', class: 'deathstar' }],
        ['tiefighter', { org: 'empire', class: 'tiefighter' }],
        ['xwing', { org: 'alliance', class: 'xwing' }],
      ] as const) {
        ep[name] = (
          await client.post<{ endpoint: EndpointView }>('/v1/endpoints', { name, labels })
        ).endpoint
      }
      await client.post('/v1/policies', { text: POLICY })
      server = spawn(
        'ip',
        [
          'netns',
          'exec',
          ep.deathstar!.netns!,
          process.execPath,
          fixture('echo-server.mjs'),
          '7000',
        ],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      )
      await new Promise((r) => server!.stdout!.once('data', r))
      const connect = (from: string) =>
        run('ip', [
          'netns',
          'exec',
          ep[from]!.netns!,
          process.execPath,
          fixture('connect.mjs'),
          ep.deathstar!.ipv4,
          '7000',
          '800',
        ])
      expect((await connect('tiefighter')).stdout.trim()).toBe('ok')
      expect((await connect('xwing')).stdout.trim()).toBe('timeout')
      browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--no-sandbox'],
      })
    })
    afterAll(async () => {
      await browser?.close()
      if (server) await killAndWait(server)
      await daemon?.stop({ purge: true })
      cleanupDirs()
    })

    it('shows the three workloads, the policy and a denied flow in red', async () => {
      const page = await browser!.newPage()
      await page.goto(daemon.uiLoginUrl)
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 15_000 })
      const names = await page.$$eval('#endpoints tbody tr', (rows) =>
        rows.map((r) => (r as unknown as { dataset: { name?: string } }).dataset.name),
      )
      expect(names).toEqual(['deathstar', 'tiefighter', 'xwing'])
      expect(await page.textContent('#policies tbody')).toContain('rule1')
      const dropped = page.locator('#flows tbody tr.DROPPED', { hasText: 'default/xwing' })
      await dropped.first().waitFor({ timeout: 10_000 })
      expect(await dropped.first().textContent()).toContain('POLICY_DENIED')
      const color = await dropped
        .first()
        .locator('td.verdict')
        .evaluate(
          (td) =>
            (
              globalThis as unknown as { getComputedStyle(e: unknown): { color: string } }
            ).getComputedStyle(td).color,
        )
      expect(color).toBe('rgb(198, 40, 40)')
      await page.waitForSelector('#servicemap svg', { timeout: 10_000 })
      const svg = await page.innerHTML('#servicemap')
      expect(svg).toContain('xwing')
      expect(svg).toMatch(/TCP\/7000 · 1 denied</) // the dropped SYN is one denied connection
      const shot = process.env.MEMBRANE_UI_SCREENSHOT
      if (shot) await page.screenshot({ path: shot, fullPage: true })
      await page.close()
    })
  },
)
