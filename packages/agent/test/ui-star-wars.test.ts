import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { EDGE_COLORS } from '@membrane/flows'
import { describeKernel } from '@membrane/test-utils'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..', '..', '..')
const TIE = '[data-from="default/tiefighter"][data-to="service:default/deathstar"]'
const XWING = '[data-from="default/xwing"][data-to="service:default/deathstar"]'

/** 'rgb(r, g, b)' of a '#rrggbb' colour, as getComputedStyle spells it. */
const rgb = (hex: string) =>
  `rgb(${[1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16)).join(', ')})`

/** Wait for the demo to exit, ending it with SIGTERM (it cleans up) when it does not. */
async function stopDemo(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  child.stdin?.end()
  const timer = setTimeout(() => child.kill('SIGTERM'), 30_000)
  await exited
  clearTimeout(timer)
}

describeKernel(
  'the web page after the Star Wars demo, in headless Chromium at 1280×800',
  ['root', 'netns', 'bpf', 'tc', 'bin:chromium'],
  () => {
    let demo: ChildProcess
    let browser: Browser | undefined
    let page: Page

    beforeAll(async () => {
      // The real scenario (tools/demo.mjs): --hold keeps its agent and UI up until stdin closes.
      demo = spawn(process.execPath, [join(root, 'tools', 'demo.mjs'), '--json', '--hold'], {
        stdio: ['pipe', 'pipe', 'inherit'],
      })
      const line = await new Promise<string>((resolve, reject) => {
        let out = ''
        const timer = setTimeout(() => reject(new Error(`demo printed ${out}`)), 90_000)
        demo.stdout!.on('data', (c: Buffer) => {
          out += c.toString()
          if (out.includes('\n')) {
            clearTimeout(timer)
            resolve(out.slice(0, out.indexOf('\n')))
          }
        })
        demo.once('exit', (code) => reject(new Error(`demo exited with ${code}: ${out}`)))
      })
      const { steps, ui } = JSON.parse(line) as {
        steps: { result: string; detail: { expected: string; enforced: boolean } }[]
        ui: string
      }
      for (const s of steps) expect(s.detail.enforced && s.result === s.detail.expected).toBe(true)
      browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--no-sandbox'],
      })
      page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
      await page.goto(ui)
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 15_000 })
      await page.waitForSelector(`#servicemap g.edge${XWING}`, { timeout: 15_000 })
    }, 150_000)

    afterAll(async () => {
      await browser?.close()
      if (demo) await stopDemo(demo)
    }, 60_000)

    it('draws one edge per ship to the deathstar service and no node for the proxy hop', async () => {
      const nodes = await page.$$eval('#servicemap g.node', (gs) =>
        gs.map((g) => (g as unknown as { dataset: { id: string } }).dataset.id),
      )
      expect(nodes.sort()).toEqual([
        'default/tiefighter',
        'default/xwing',
        'service:default/deathstar',
      ])
      const edges = await page.$$eval('#servicemap g.edge', (gs) =>
        gs.map((g) => {
          const d = (g as unknown as { dataset: Record<string, string> }).dataset
          return `${d.from} -> ${d.to}`
        }),
      )
      expect(edges.sort()).toEqual([
        'default/tiefighter -> service:default/deathstar',
        'default/xwing -> service:default/deathstar',
      ])
    })

    it('counts connections: the xwing has one allowed (no policy yet) and one denied SYN', async () => {
      const attrs = (sel: string) =>
        page.$eval(`#servicemap g.edge${sel}`, (g) => {
          const e = g as unknown as { dataset: Record<string, string>; classList: string[] }
          const stroke = (
            globalThis as unknown as { getComputedStyle(e: unknown): { stroke: string } }
          ).getComputedStyle(
            (g as unknown as { querySelector(s: string): unknown }).querySelector('path'),
          ).stroke
          return {
            cls: [...e.classList].filter((c) => c !== 'edge' && c !== 'selected'),
            allowed: e.dataset.allowed,
            denied: e.dataset.denied,
            audited: e.dataset.audited,
            stroke,
          }
        })
      // Step 1 (no policy): the xwing lands; step 2: its SYN, retried once and reported as
      // trace, policy verdicts and drops, is one denied connection.
      expect(await attrs(XWING)).toEqual({
        cls: ['mixed'],
        allowed: '1',
        denied: '1',
        audited: '0',
        stroke: rgb(EDGE_COLORS.mixed),
      })
      // One connection per tiefighter request (steps 1, 2, 3 POST, 3 PUT), all allowed at L4.
      expect(await attrs(TIE)).toEqual({
        cls: ['allowed'],
        allowed: '4',
        denied: '0',
        audited: '0',
        stroke: rgb(EDGE_COLORS.allowed),
      })
      const counts = await page.textContent(`#servicemap g.edge${XWING} text.counts`)
      expect(counts).toBe('TCP/80 · 1 allowed, 1 denied')
    })

    it('puts the L7 verdicts on the edge the proxy serves, in their colours', async () => {
      const l7 = await page.$$eval(`#servicemap g.edge${TIE} text.l7`, (ts) =>
        ts.map((t) => ({
          text: t.textContent,
          fill: (
            globalThis as unknown as { getComputedStyle(e: unknown): { fill: string } }
          ).getComputedStyle(t).fill,
        })),
      )
      expect(l7).toEqual([
        { text: 'POST /v1/request-landing 1 allowed', fill: rgb(EDGE_COLORS.allowed) },
        { text: 'PUT /v1/exhaust-port 1 denied', fill: rgb(EDGE_COLORS.denied) },
      ])
      // Hover text and click details say which policy decided.
      const title = await page.textContent(`#servicemap g.edge${TIE} > title`)
      expect(title).toContain('HTTP PUT /v1/exhaust-port: 1 denied')
      expect(title).toContain('allowed by CiliumNetworkPolicy default/rule1')
      expect(title).toContain('denied by CiliumNetworkPolicy default/rule1')
      await page.click(`#servicemap g.edge${TIE} text.counts`)
      const detail = await page.textContent('#edge-detail')
      expect(detail).toContain('default/tiefighter → default/deathstar')
      expect(detail).toContain('HTTP POST /v1/request-landing: 1 allowed')
      expect(detail).toMatch(/default\/rule1/)
    })

    it('labels each flow row with its event type: the policy verdict and the drop read apart', async () => {
      const rows = await page.$$eval('#flows tbody tr', (trs) =>
        trs.map((tr) => {
          const t = tr as unknown as {
            className: string
            querySelector(s: string): { textContent: string }
          }
          return {
            verdict: t.className,
            event: t.querySelector('td.event').textContent,
            policy: t.querySelector('td.policy').textContent,
            text: (tr as unknown as { textContent: string }).textContent,
          }
        }),
      )
      const xwingDrops = rows.filter(
        (r) => r.verdict === 'DROPPED' && r.text.includes('default/xwing'),
      )
      expect(new Set(xwingDrops.map((r) => r.event))).toEqual(
        new Set(['policy verdict (ingress)', 'drop']),
      )
      for (const r of xwingDrops)
        expect(r.policy).toBe('denied by CiliumNetworkPolicy default/rule1')
      const events = new Set(rows.map((r) => r.event))
      for (const e of [
        'trace (from-endpoint)',
        'trace (to-proxy)',
        'policy verdict (egress)',
        'L7 request',
        'L7 response',
      ])
        expect(events).toContain(e)
      // Traces and L7 responses decide nothing, so they name no policy.
      for (const r of rows.filter((x) => x.event.startsWith('trace') || x.event === 'L7 response'))
        expect(r.policy).toBe('')
    })

    it('fits a 1280-pixel window: nothing scrolls sideways', async () => {
      const { page: width, tables } = await page.evaluate(() => {
        const d = globalThis as unknown as {
          document: {
            scrollingElement: { scrollWidth: number }
            querySelectorAll(s: string): { id: string; scrollWidth: number; clientWidth: number }[]
          }
        }
        return {
          page: d.document.scrollingElement.scrollWidth,
          tables: [...d.document.querySelectorAll('table, section')].map((t) => ({
            id: t.id,
            over: t.scrollWidth - t.clientWidth,
          })),
        }
      })
      expect(width).toBeLessThanOrEqual(1280)
      for (const t of tables) expect(t.over, t.id).toBeLessThanOrEqual(0)
      const shot = process.env.MEMBRANE_UI_SCREENSHOT
      if (shot) await page.screenshot({ path: shot, fullPage: true })
    })
  },
)
