import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run } from '@membrane/test-utils'
import { afterAll, describe, expect, it } from 'vitest'
import { root } from './_registry'

// The versioning half of docs/RELEASING.md, on a copy of the workspace's manifests and the
// repository's .changeset/config.json: a minor change to @membrane/maglev must move every
// sibling range on it and bump and changelog each dependent.
describe('changeset version (the release flow of docs/RELEASING.md)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'membrane-changesets-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const read = (pkg: string) =>
    JSON.parse(readFileSync(join(dir, 'packages', pkg, 'package.json'), 'utf8')) as {
      version: string
      dependencies?: Record<string, string>
    }

  it('bumps maglev, moves every sibling range on it, writes a changelog per package', async () => {
    cpSync(join(root, 'package.json'), join(dir, 'package.json'))
    cpSync(join(root, '.changeset'), join(dir, '.changeset'), { recursive: true })
    for (const group of ['packages', 'examples']) {
      for (const name of readdirSync(join(root, group))) {
        const manifest = join(root, group, name, 'package.json')
        if (!existsSync(manifest)) continue
        mkdirSync(join(dir, group, name), { recursive: true })
        cpSync(manifest, join(dir, group, name, 'package.json'))
      }
    }
    mkdirSync(join(dir, 'bpf-src'))
    cpSync(join(root, 'bpf-src', 'package.json'), join(dir, 'bpf-src', 'package.json'))
    const before = read('maglev').version
    writeFileSync(
      join(dir, '.changeset', 'maglev-minor.md'),
      "---\n'@membrane/maglev': minor\n---\n\nMaglev tables of any prime size.\n",
    )
    await run(process.execPath, [join(root, 'node_modules/@changesets/cli/bin.js'), 'version'], {
      cwd: dir,
    })
    const [major, minor] = before.split('.').map(Number)
    const next = `${major}.${(minor ?? 0) + 1}.0`
    expect(read('maglev').version).toBe(next)
    expect(read('datapath').dependencies?.['@membrane/maglev']).toBe(`^${next}`)
    const datapath = read('datapath').version
    expect(datapath).not.toBe('0.1.0')
    // ...and the dependents of the dependents, each with its own changelog.
    expect(read('agent').dependencies?.['@membrane/datapath']).toBe(`^${datapath}`)
    const log = readFileSync(join(dir, 'packages/maglev/CHANGELOG.md'), 'utf8')
    expect(log).toContain(`## ${next}`)
    expect(log).toContain('Maglev tables of any prime size.')
    expect(readFileSync(join(dir, 'packages/datapath/CHANGELOG.md'), 'utf8')).toMatch(
      /@membrane\/maglev@0\.2\.0/,
    )
    expect(existsSync(join(dir, '.changeset', 'maglev-minor.md'))).toBe(false)
  }, 120_000)
})
