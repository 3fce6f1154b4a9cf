import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
// @ts-expect-error tools/depgraph.mjs is plain JavaScript
import { BEGIN, buildGraph, END, layers, render } from '../depgraph.mjs'

const tool = fileURLToPath(new URL('../depgraph.mjs', import.meta.url))
const root = fileURLToPath(new URL('../..', import.meta.url))

interface Manifest {
  name: string
  private?: boolean
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  devDependencies?: Record<string, string>
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [tool, ...args], { cwd: root }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

/** A workspace on disk: packages/<dir>/package.json and docs/ARCHITECTURE.md. */
function workspace(dir: string, manifests: Manifest[], doc: string): void {
  for (const m of manifests) {
    const p = join(dir, 'packages', m.name.replace('@membrane/', ''))
    mkdirSync(p, { recursive: true })
    writeFileSync(join(p, 'package.json'), JSON.stringify(m))
  }
  mkdirSync(join(dir, 'docs'), { recursive: true })
  writeFileSync(join(dir, 'docs', 'ARCHITECTURE.md'), doc)
}

// A fixture shaped like the repository: a diamond plus a peer, an optional peer, a private
// package, a devDependency that must not count and a third-party dependency that must not show.
const fixture: Manifest[] = [
  { name: '@membrane/base' },
  { name: '@membrane/left', dependencies: { '@membrane/base': '0.1.0', yaml: '^2' } },
  {
    name: '@membrane/right',
    dependencies: { '@membrane/base': '0.1.0' },
    devDependencies: { '@membrane/top': '0.1.0' },
  },
  {
    name: '@membrane/top',
    dependencies: { '@membrane/right': '0.1.0', '@membrane/left': '0.1.0' },
    peerDependencies: { '@membrane/extra': '0.1.0', '@membrane/base': '0.1.0' },
    peerDependenciesMeta: { '@membrane/extra': { optional: true } },
  },
  { name: '@membrane/extra' },
  { name: '@membrane/helpers', private: true, devDependencies: { '@membrane/base': '0.1.0' } },
]

describe('tools/depgraph.mjs', () => {
  const dirs: string[] = []
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'membrane-depgraph-'))
    dirs.push(d)
    return d
  }
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it('layers a fixture so that every edge points to a lower layer', () => {
    const graph = buildGraph(fixture)
    const layer: Map<string, number> = layers(graph)
    expect(Object.fromEntries(layer)).toEqual({
      base: 0,
      extra: 0,
      helpers: 0,
      left: 1,
      right: 1,
      top: 2,
    })
    // devDependencies are not edges (right -> top would be a cycle), third-party deps are not shown
    expect(graph.get('right').edges).toEqual([{ to: 'base', kind: 'dependency', optional: false }])
    expect(graph.get('top').edges).toEqual([
      { to: 'left', kind: 'dependency', optional: false },
      { to: 'right', kind: 'dependency', optional: false },
      { to: 'base', kind: 'peer', optional: false },
      { to: 'extra', kind: 'peer', optional: true },
    ])
  })

  it('renders layers top-down with peers, optional peers and private packages marked', () => {
    const text: string = render(buildGraph(fixture))
    const body = text.split('\n').slice(2).join('\n')
    expect(body).toBe(
      [
        'layer 2  top     -> left, right, base (peer), extra (optional peer)',
        'layer 1  left    -> base',
        '         right   -> base',
        'layer 0  base    (no @membrane dependency)',
        '         extra   (no @membrane dependency)',
        '         helpers (no @membrane dependency)  [private]',
        '',
      ].join('\n'),
    )
  })

  it('refuses a cycle and a dependency outside the workspace, naming them', () => {
    expect(() =>
      buildGraph([
        { name: '@membrane/a', dependencies: { '@membrane/b': '1' } },
        { name: '@membrane/b', peerDependencies: { '@membrane/a': '1' } },
      ]),
    ).toThrow('dependency cycle a -> b -> a')
    expect(() =>
      buildGraph([{ name: '@membrane/a', dependencies: { '@membrane/gone': '1' } }]),
    ).toThrow('@membrane/a depends on @membrane/gone')
  })

  it('--check fails on drift, the default run rewrites only the marked block, then --check passes', async () => {
    const dir = tmp()
    const doc = `# Doc\n\nbefore\n\n${BEGIN}\nstale\n${END}\n\nafter\n`
    workspace(dir, fixture, doc)
    const file = join(dir, 'docs', 'ARCHITECTURE.md')

    const stale = await cli(['--root', dir, '--check'])
    expect(stale.code).toBe(1)
    expect(stale.stderr).toContain('npm run docs:graph')
    expect(readFileSync(file, 'utf8')).toBe(doc)

    expect((await cli(['--root', dir])).code).toBe(0)
    const written = readFileSync(file, 'utf8')
    expect(written.startsWith('# Doc\n\nbefore\n\n')).toBe(true)
    expect(written.endsWith(`${END}\n\nafter\n`)).toBe(true)
    expect(written).toContain('layer 2  top     -> left, right')
    expect((await cli(['--root', dir, '--check'])).code).toBe(0)

    // a manifest change is drift again
    writeFileSync(
      join(dir, 'packages', 'base', 'package.json'),
      JSON.stringify({ name: '@membrane/base', dependencies: { '@membrane/extra': '0.1.0' } }),
    )
    expect((await cli(['--root', dir, '--check'])).code).toBe(1)
  })

  it('fails with status 2 when the doc has no markers', async () => {
    const dir = tmp()
    workspace(dir, fixture, '# Doc without a graph\n')
    const r = await cli(['--root', dir, '--check'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(BEGIN)
  })

  it('docs/ARCHITECTURE.md shows the graph of the packages as they are', async () => {
    const r = await cli(['--check'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })
})
