import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { run } from '@membrane/test-utils'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error tools/pack.mjs is plain JavaScript
import { packAll } from '../pack.mjs'
import { root } from './_registry'

interface Packed {
  name: string
  version: string
  file: string
  size: number
  unpackedSize: number
  files: string[]
}

interface Manifest {
  name: string
  license?: string
  os?: string[]
  repository?: { type: string; url: string; directory: string }
  homepage?: string
  bugs?: { url: string }
  exports?: unknown
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  devDependencies?: Record<string, string>
}

/** Packages with native code or kernel programs: they only work on Linux. */
const LINUX_ONLY = [
  '@membrane/agent',
  '@membrane/bpf-loader-napi',
  '@membrane/datapath',
  '@membrane/l7proxy',
]

function exportTargets(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value)
  else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) {
      if (k === '@membrane/source') out.push(`@membrane/source:${String(v)}`)
      else exportTargets(v, out)
    }
  return out
}

/** One file of a .tgz (ustar: 512-byte headers, name at 0, octal size at 124). */
function tarEntry(tgz: Buffer, name: string): string {
  const tar = gunzipSync(tgz)
  for (let off = 0; off + 512 <= tar.length; ) {
    const entry = tar
      .subarray(off, off + 100)
      .toString('utf8')
      .replace(/\0.*$/s, '')
    if (entry === '') break
    const size = Number.parseInt(
      tar
        .subarray(off + 124, off + 136)
        .toString('utf8')
        .trim(),
      8,
    )
    if (entry === name) return tar.subarray(off + 512, off + 512 + size).toString('utf8')
    off += 512 + Math.ceil(size / 512) * 512
  }
  throw new Error(`${name} is not in the tarball`)
}

describe('published tarballs (tools/pack.mjs, as tools/release.mjs publishes them)', () => {
  const out = mkdtempSync(join(tmpdir(), 'membrane-tarballs-'))
  let packed: Packed[] = []
  const manifestOf = (p: Packed): Manifest =>
    JSON.parse(readFileSync(join(root, 'packages', p.name.split('/')[1]!, 'package.json'), 'utf8'))
  const publishedManifestOf = async (p: Packed): Promise<Manifest> =>
    JSON.parse(tarEntry(readFileSync(p.file), 'package/package.json'))

  beforeAll(() => {
    packed = packAll({ out }) as Packed[]
  }, 900_000)
  afterAll(() => rmSync(out, { recursive: true, force: true }))

  it('packs every publishable package', () => {
    const names = readdirSync(join(root, 'packages'))
      .map((d) => JSON.parse(readFileSync(join(root, 'packages', d, 'package.json'), 'utf8')))
      .filter((m) => !m.private)
      .map((m) => m.name)
      .sort()
    expect(packed.map((p) => p.name).sort()).toEqual(names)
  })

  it('publint finds nothing to report in any tarball', async () => {
    for (const p of packed) {
      const tarball = readFileSync(p.file)
      const { messages, pkg } = await publint({
        pack: {
          tarball: tarball.buffer.slice(
            tarball.byteOffset,
            tarball.byteOffset + tarball.byteLength,
          ),
        },
        level: 'suggestion',
      })
      const text = messages.map((m) => `${m.type}: ${formatMessage(m, pkg, { color: false })}`)
      expect(text, p.name).toEqual([])
    }
  })

  // Profile node16: TypeScript's legacy node10 resolution cannot see subpath exports
  // (@membrane/identity/etcd, @membrane/bandwidth/host); every root entry still has `types`.
  it('are the types wrong? no: every entry resolves with types under node16 (ESM, CJS) and bundlers', async () => {
    for (const p of packed) {
      // Only JavaScript entry points have types to check (not @membrane/bandwidth/bpf/*.o).
      const data = Object.entries(
        ((await publishedManifestOf(p)).exports ?? {}) as Record<string, unknown>,
      )
        .filter(([, target]) => typeof target === 'string' && !/\.(c|m)?js(on)?$/.test(target))
        .map(([entry]) => entry)
      const exclude = data.length > 0 ? ['--exclude-entrypoints', ...data] : []
      const r = await run(
        join(root, 'node_modules/.bin/attw'),
        [p.file, '--format', 'json', '--profile', 'node16', ...exclude],
        {
          env: { ...process.env, NO_COLOR: '1' },
        },
      ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '', stderr: '' }))
      const result = JSON.parse(r.stdout) as { problems?: unknown[] | Record<string, unknown[]> }
      const problems = Array.isArray(result.problems)
        ? result.problems
        : Object.values(result.problems ?? {}).flat()
      // attw's JSON lists every problem; the profile only decides its exit code.
      expect(
        (problems as Array<{ resolutionKind?: string }>).filter(
          (q) => q.resolutionKind !== 'node10',
        ),
        p.name,
      ).toEqual([])
      expect(r.stdout, p.name).not.toMatch(/"kind":\s*"(FalseCJS|FalseESM|CJSResolvesToESM)"/)
    }
  }, 300_000)

  it('ship LICENSE and README, no source maps, and the run-time artifacts', () => {
    for (const p of packed) {
      expect(p.files, p.name).toContain('LICENSE')
      expect(p.files, p.name).toContain('README.md')
      expect(
        p.files.filter((f) => f.endsWith('.map')),
        p.name,
      ).toEqual([])
      expect(
        p.files.filter((f) => f.startsWith('src/') && !f.startsWith('src/native/')),
        p.name,
      ).toEqual([])
    }
    const files = (name: string) => packed.find((p) => p.name === name)?.files ?? []
    expect(files('@membrane/bpf-loader-napi')).toContain(
      'prebuilds/linux-x64/membrane_bpf.napi.glibc.node',
    )
    expect(files('@membrane/datapath')).toEqual(
      expect.arrayContaining(['bpf/endpoint.o', 'bpf/sock.o', 'bpf/LICENSE']),
    )
    expect(files('@membrane/bandwidth')).toEqual(
      expect.arrayContaining(['bpf/bandwidth.o', 'bpf/LICENSE']),
    )
  })

  it('published manifests: repository, homepage, bugs, os, no workspace-only condition', async () => {
    for (const p of packed) {
      const m = await publishedManifestOf(p)
      expect(m.license, p.name).toBe('Apache-2.0')
      expect(m.repository?.url, p.name).toMatch(/^git\+https:\/\/.+\.git$/)
      expect(m.repository?.directory, p.name).toBe(`packages/${p.name.split('/')[1]}`)
      expect(m.homepage, p.name).toMatch(/^https:\/\//)
      expect(m.bugs?.url, p.name).toMatch(/^https:\/\//)
      expect(m.os, p.name).toEqual(LINUX_ONLY.includes(p.name) ? ['linux'] : undefined)
      expect(m.devDependencies, p.name).toBeUndefined()
      const targets = exportTargets(m.exports)
      expect(
        targets.filter((t) => t.startsWith('@membrane/source')),
        p.name,
      ).toEqual([])
      // every export target is in the tarball
      for (const t of targets) expect(p.files, `${p.name} exports ${t}`).toContain(t.slice(2))
    }
  })

  it('depend on siblings and third parties with ^ ranges; optional I/O stays optional', () => {
    for (const p of packed) {
      const m = manifestOf(p)
      for (const [dep, range] of Object.entries({ ...m.dependencies, ...m.peerDependencies }))
        expect(range, `${p.name} -> ${dep}`).toMatch(/^\^\d/)
    }
    const identity = manifestOf(packed.find((p) => p.name === '@membrane/identity')!)
    expect(identity.dependencies?.etcd3).toBeUndefined()
    expect(identity.peerDependenciesMeta?.etcd3?.optional).toBe(true)
  })
})
