import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describeKernel, killAndWait, run, uniqueName } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type LocalRegistry, root, startRegistry } from './_registry'

const PACKAGES = [
  '@membrane/agent',
  '@membrane/bandwidth',
  '@membrane/bpf-loader-napi',
  '@membrane/datapath',
  '@membrane/flows',
  '@membrane/identity',
  '@membrane/l7proxy',
  '@membrane/maglev',
  '@membrane/policy',
  '@membrane/types',
]
const starWars = join(root, 'examples', 'star-wars')

/** The first TypeScript/JavaScript code block of a README, verbatim. */
function firstCodeBlock(readme: string): string {
  const m = /^```(?:ts|typescript|js|javascript|mjs)\n([\s\S]*?)^```/m.exec(readme)
  if (!m?.[1]) throw new Error('no ts/js code block in the README')
  return m[1]
}

describeKernel(
  'npm users install by name from a registry (local Verdaccio, tools/release.mjs)',
  ['root', 'netns', 'bpf', 'tc'],
  () => {
    let registry: LocalRegistry
    const dirs: string[] = []
    const tempDir = (what: string) => {
      const d = mkdtempSync(join(tmpdir(), `membrane-${what}-`))
      dirs.push(d)
      return d
    }
    const npm = (args: string[], cwd: string) =>
      run('npm', args, { cwd, env: registry.env, timeout: 600_000 })

    beforeAll(async () => {
      registry = await startRegistry()
      // The project's release script, as a release would run it (build, pack, publish).
      await run(
        process.execPath,
        [join(root, 'tools', 'release.mjs'), '--registry', registry.url],
        {
          cwd: root,
          env: registry.env,
          timeout: 900_000,
        },
      )
    }, 900_000)

    afterAll(async () => {
      await registry?.stop()
      for (const d of dirs) rmSync(d, { recursive: true, force: true })
    })

    it('the release script published every package', async () => {
      const versions = await Promise.all(
        PACKAGES.map(async (name) => (await npm(['view', name, 'version'], root)).stdout.trim()),
      )
      for (const [i, v] of versions.entries()) expect(v, PACKAGES[i]).toMatch(/^\d+\.\d+\.\d+/)
    }, 120_000)

    it('npm install @membrane/agent in an empty directory: the installed agent enforces the Star Wars policy', async () => {
      const app = tempDir('app')
      await npm(['install', '@membrane/agent'], app)
      const mods = join(app, 'node_modules')
      // What the packages brought, with no repository around.
      expect(
        readdirSync(join(mods, '@membrane/bpf-loader-napi/prebuilds/linux-x64')).filter((f) =>
          f.endsWith('.node'),
        ),
      ).toEqual(['membrane_bpf.napi.glibc.node'])
      expect(existsSync(join(mods, '@membrane/datapath/bpf/endpoint.o'))).toBe(true)
      expect(existsSync(join(mods, '@membrane/datapath/bpf/sock.o'))).toBe(true)
      expect(existsSync(join(mods, 'etcd3')), 'etcd3 is an optional peer').toBe(false)
      const yamlCopies = (await npm(['ls', 'yaml', '--all', '--parseable'], app)).stdout
        .trim()
        .split('\n')
        .filter(Boolean)
      expect(new Set(yamlCopies).size, yamlCopies.join('\n')).toBe(1)

      const membrane = join(mods, '.bin', 'membrane')
      const work = tempDir('agent')
      const socket = join(work, 'membrane.sock')
      const flags = [
        '--bpffs-root',
        `/sys/fs/bpf/membrane-test/${uniqueName()}`,
        '--state-dir',
        join(work, 'state'),
        '--socket',
        socket,
        '--ipam-pool',
        `10.215.${process.pid % 256}.0/24`,
        '--metrics-port',
        '0',
        '--proxy-port',
        '0',
        '--kvstore',
        'memory',
        '--log-level',
        'error',
        '--prefix',
        `r${(process.pid % 46656).toString(36)}`,
      ]
      const cli = async (args: string[]) =>
        (await run(membrane, [...args, '--socket', socket], { cwd: app })).stdout
      const children: ChildProcess[] = []
      let agentLog = ''
      const agent = spawn(membrane, ['agent', ...flags], {
        cwd: app,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      children.push(agent)
      agent.stderr?.on('data', (c: Buffer) => {
        agentLog += c.toString()
      })
      try {
        const deadline = Date.now() + 60_000
        for (;;) {
          if (agent.exitCode !== null) throw new Error(`agent exited: ${agentLog}`)
          const s = await run(membrane, ['status', '-o', 'json', '--socket', socket], {
            cwd: app,
          }).catch(() => undefined)
          if (s) {
            const status = JSON.parse(s.stdout) as {
              components: Record<string, { state: string }>
            }
            expect(status.components.datapath?.state, agentLog).toBe('ok')
            break
          }
          if (Date.now() > deadline) throw new Error(`agent did not answer: ${agentLog}`)
          await new Promise((r) => setTimeout(r, 300))
        }
        const create = async (name: string, labels: string) =>
          (
            JSON.parse(
              await cli(['endpoint', 'create', '--name', name, '--labels', labels, '-o', 'json']),
            ) as { endpoint: { netns: string; ipv4: string } }
          ).endpoint
        const deathstar = await create('deathstar', 'org=empire,class=deathstar')
        const tiefighter = await create('tiefighter', 'org=empire,class=tiefighter')
        const xwing = await create('xwing', 'org=alliance,class=xwing')
        const server = spawn(
          'ip',
          [
            'netns',
            'exec',
            deathstar.netns,
            process.execPath,
            join(starWars, 'src', 'deathstar.mjs'),
            '80',
            'deathstar',
          ],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        )
        children.push(server)
        await new Promise<void>((resolve, reject) => {
          server.stdout?.on('data', (c: Buffer) => {
            if (c.toString().includes('ready')) resolve()
          })
          server.once('exit', (code) => reject(new Error(`deathstar exited ${code}`)))
        })
        const ship = async (from: { netns: string }, method: string, path: string) => {
          const { stdout } = await run('ip', [
            'netns',
            'exec',
            from.netns,
            process.execPath,
            join(starWars, 'src', 'ship.mjs'),
            method,
            `http://${deathstar.ipv4}:80${path}`,
            '1500',
          ])
          const a = JSON.parse(stdout) as { status?: number; error?: string }
          return a.status ?? a.error
        }

        // No policy: both ships land.
        expect(await ship(tiefighter, 'POST', '/v1/request-landing')).toBe(200)
        expect(await ship(xwing, 'POST', '/v1/request-landing')).toBe(200)
        // L3/L4: the datapath drops the xwing's SYN.
        await cli(['policy', 'import', '-f', join(starWars, 'policies', 'sw_l3_l4_policy.yaml')])
        expect(await ship(tiefighter, 'POST', '/v1/request-landing')).toBe(200)
        expect(await ship(xwing, 'POST', '/v1/request-landing')).toBe('timeout')
        // L7: the installed proxy answers 403 to the exhaust port.
        await cli(['policy', 'import', '-f', join(starWars, 'policies', 'sw_l3_l4_l7_policy.yaml')])
        expect(await ship(tiefighter, 'POST', '/v1/request-landing')).toBe(200)
        expect(await ship(tiefighter, 'PUT', '/v1/exhaust-port')).toBe(403)
      } finally {
        for (const c of children.reverse()) await killAndWait(c, 5000)
        // Everything the agent made (namespaces, veths, programs, pins) goes with cleanup.
        await run(membrane, ['agent', 'cleanup', ...flags], { cwd: app })
      }
      const prefix = flags[flags.indexOf('--prefix') + 1]
      expect((await run('ip', ['netns', 'list'])).stdout).not.toContain(`${prefix}-`)
      expect(existsSync(flags[flags.indexOf('--bpffs-root') + 1]!)).toBe(false)
    }, 900_000)

    it('no prebuilt for this platform: the commands the loader error names build the addon from source', async () => {
      const app = tempDir('from-source')
      await npm(['install', '@membrane/bpf-loader-napi'], app)
      const pkg = join(app, 'node_modules', '@membrane', 'bpf-loader-napi')
      // As on a platform the package has no prebuilt addon for.
      rmSync(join(pkg, 'prebuilds'), { recursive: true })
      const probe = [
        '--input-type=module',
        '-e',
        "const m = await import('@membrane/bpf-loader-napi'); console.log(m.probeMapType('hash'))",
      ]
      const failed = await run(process.execPath, probe, { cwd: app }).then(
        () => undefined,
        (e: { stderr: string }) => e.stderr,
      )
      expect(failed).toContain('prebuilds/linux-x64/membrane_bpf.napi.glibc.node: not found')
      const commands = (failed ?? '')
        .split('\n')
        .map((l) => /^\s+(npm [a-z-]+(?: [a-z-]+)? @membrane\/bpf-loader-napi)/.exec(l)?.[1])
        .filter((c): c is string => c !== undefined)
      expect(commands).toEqual([
        'npm install-scripts approve @membrane/bpf-loader-napi',
        'npm rebuild @membrane/bpf-loader-napi',
      ])
      // No internet here for node-gyp's header download: the headers installed with this node.
      const env = { ...registry.env, npm_config_nodedir: join(process.execPath, '..', '..') }
      for (const c of commands)
        await run('npm', c.split(' ').slice(1), { cwd: app, env, timeout: 600_000 })
      expect(existsSync(join(pkg, 'build', 'Release', 'membrane_bpf.node'))).toBe(true)
      expect((await run(process.execPath, probe, { cwd: app })).stdout.trim()).toBe('true')
    }, 900_000)

    it('npm install @membrane/identity alone: the pure core works, the etcd subpath asks for etcd3', async () => {
      const app = tempDir('identity')
      await npm(['install', '@membrane/identity'], app)
      expect(existsSync(join(app, 'node_modules', 'etcd3'))).toBe(false)
      writeFileSync(
        join(app, 'check.mjs'),
        [
          "import { MemoryAllocator } from '@membrane/identity'",
          "import { EtcdAllocator } from '@membrane/identity/etcd'",
          'const a = new MemoryAllocator()',
          "const id = await a.allocate(['k8s:app=web'])",
          'let code',
          "try { await EtcdAllocator.create({ endpoints: ['http://127.0.0.1:1'], node: 'n1' }) }",
          'catch (e) { code = e.code; console.log(e.message) }',
          'console.log(JSON.stringify({ id: id.id, code }))',
        ].join('\n'),
      )
      const r = await run(process.execPath, ['check.mjs'], { cwd: app })
      const lines = r.stdout.trim().split('\n')
      expect(lines[0]).toContain('npm install etcd3')
      const out = JSON.parse(lines[1]!) as { id: number; code: string }
      expect(out.code).toBe('DEPENDENCY_MISSING')
      expect(out.id).toBeGreaterThanOrEqual(256)
    }, 600_000)

    it('npm install @membrane/policy alone runs the README example', async () => {
      const app = tempDir('policy')
      await npm(['install', '@membrane/policy'], app)
      const installed = readdirSync(join(app, 'node_modules', '@membrane'))
      // The policy compiler brings only its pure vocabulary, nothing native or agent-side.
      expect(installed).toEqual(['policy', 'types'])
      const code = firstCodeBlock(readFileSync(join(root, 'packages/policy/README.md'), 'utf8'))
      writeFileSync(join(app, 'example.mts'), code)
      // TypeScript as the README shows it: tsx strips the types; imports resolve from app/.
      const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href
      const r = await run(process.execPath, ['--import', tsx, 'example.mts'], { cwd: app })
      expect(r.stderr).toBe('')
      expect(r.stdout.length).toBeGreaterThan(0)
    }, 600_000)
  },
)
