import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const tool = join(root, 'tools', 'doctest.mjs')

interface Report {
  readme: string
  blocks: number
  executed: number
  checked: number
  files: number
  output: number
  skipped: { line: number; reason: string }[]
  knownFailures: { line: number; reason: string; error: string }[]
  failures: { readme: string; line: number; error: string }[]
  workDir?: string
}

function doctest(args: string[]): Promise<Report[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [tool, '--json', ...args],
      { cwd: root, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        const lines = stdout.split('\n').filter((l) => l.startsWith('{'))
        if (lines.length === 0) reject(new Error(`doctest printed no report: ${error}\n${stderr}`))
        else resolve(lines.map((l) => JSON.parse(l) as Report))
      },
    )
  })
}

const fence = '```'

// The harness itself: each rule it enforces fails a README that breaks it.
describe('tools/doctest.mjs', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'membrane-doctest-fixture-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  let n = 0
  /** Check `markdown` as if it were the README of @membrane/policy. */
  async function check(markdown: string, extra: string[] = []): Promise<Report> {
    const file = join(dir, `README-${n++}.md`)
    writeFileSync(file, markdown)
    const [report] = await doctest(['--package', 'packages/policy', ...extra, file])
    return report!
  }

  it('runs a TS example and fails on an undefined placeholder, naming the line', async () => {
    const ok = await check(
      `# x\n\n${fence}ts\nimport { parsePolicyDocuments } from '@membrane/policy'\nconsole.log(parsePolicyDocuments('kind: NetworkPolicy\\napiVersion: networking.k8s.io/v1\\nmetadata: { name: a }\\nspec: { podSelector: {} }').length)\n${fence}\n`,
    )
    expect(ok.failures).toEqual([])
    expect(ok.executed).toBe(1)
    const bad = await check(
      `# x\n\ntext\n\n${fence}ts\nimport { parsePolicyDocuments } from '@membrane/policy'\nparsePolicyDocuments(yamlText)\n${fence}\n`,
    )
    // Both the run and the type check catch it; both name the block's line.
    expect(bad.failures.map((f) => f.line)).toEqual([5, 5])
    expect(bad.failures[0]!.error).toMatch(/ReferenceError: yamlText is not defined/)
    expect(bad.failures[1]!.error).toMatch(
      /README line 7: error TS2304: Cannot find name 'yamlText'/,
    )
  })

  it('type-checks TypeScript blocks that run, naming the README line of an error', async () => {
    const r = await check(
      `# x\n\n${fence}ts\nconst port: number = '80' as unknown as number\nconst name: string = port\nconsole.log(name)\n${fence}\n`,
    )
    expect(r.executed).toBe(1)
    expect(r.failures).toHaveLength(1)
    expect(r.failures[0]!.error).toMatch(
      /type error at README line 5: error TS2322: Type 'number' is not assignable to type 'string'/,
    )
  })

  it('refuses imports that are not dependencies of the documented package', async () => {
    const r = await check(
      `${fence}ts\nimport fc from 'fast-check'\nimport { Datapath } from '@membrane/datapath'\nimport { x } from '@membrane/policy/nope'\nimport { readFileSync } from 'node:fs'\n${fence}\n`,
    )
    const errors = r.failures.map((f) => f.error).join('\n')
    expect(errors).toMatch(/imports "fast-check": fast-check is not a dependency/)
    expect(errors).toMatch(/imports "@membrane\/datapath"/)
    expect(errors).toMatch(/@membrane\/policy exports no "\.\/nope"/)
    expect(errors).not.toMatch(/node:fs/)
    expect(r.executed).toBe(0)
  })

  it('refuses `using`, which Node 20 cannot run', async () => {
    const r = await check(
      `${fence}ts\nconst res = { [Symbol.dispose]() {} }\nusing x = res\n${fence}\n`,
    )
    expect(r.failures[0]?.error).toMatch(/`using` declarations need Node 24/)
  })

  it('makes every block that is not run say what it is', async () => {
    const r = await check(
      `${fence}yaml\na: 1\n${fence}\n\n<!-- doctest: skip -->\n${fence}sh\ntrue\n${fence}\n\n<!-- doctest: skip (needs a cluster) -->\n${fence}sh\nfalse\n${fence}\n\n<!-- doctest: output -->\n${fence}\n{"ok":true}\n${fence}\n`,
    )
    expect(r.failures.map((f) => f.line)).toEqual([1, 6])
    expect(r.failures[0]!.error).toMatch(/`yaml` block is not executable/)
    expect(r.failures[1]!.error).toMatch(/"skip" needs a reason/)
    expect(r.skipped).toEqual([{ line: 11, reason: 'needs a cluster' }])
    expect(r.output).toBe(1)
  })

  it('writes file blocks for the blocks after them, and checks exit statuses', async () => {
    const r = await check(
      `<!-- doctest: file conf/a.yaml -->\n${fence}yaml\nkey: 42\n${fence}\n\n${fence}sh\ngrep -q 'key: 42' conf/a.yaml\n${fence}\n\n<!-- doctest: exit 3 -->\n${fence}sh\nexit 3\n${fence}\n\n${fence}sh\nexit 3\n${fence}\n`,
    )
    expect(r.files).toBe(1)
    expect(r.executed).toBe(2)
    expect(r.failures).toHaveLength(1)
    expect(r.failures[0]!.line).toBe(15)
    expect(r.failures[0]!.error).toMatch(/exited 3, expected 0/)
  })

  it('runs the bins of the documented package from their source', async () => {
    const r = await check(
      `<!-- doctest: file p.yaml -->\n${fence}yaml\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: a, namespace: default }\nspec: { podSelector: {}, policyTypes: [Ingress] }\n${fence}\n\n${fence}sh\nnpx membrane-policy validate p.yaml\n${fence}\n\n<!-- doctest: exit 3 -->\n${fence}sh\nmembrane-policy trace -f p.yaml --from default:a=b --to default:c=d --port 80\n${fence}\n`,
    )
    expect(r.failures).toEqual([])
    expect(r.executed).toBe(2)
  })

  it('fails a known-failure block that passes, and reports one that fails', async () => {
    const r = await check(
      `<!-- doctest: known-failure (exit code fixed elsewhere) -->\n${fence}sh\ntrue\n${fence}\n\n<!-- doctest: known-failure (not yet) -->\n${fence}sh\nfalse\n${fence}\n`,
    )
    expect(r.failures).toHaveLength(1)
    expect(r.failures[0]!.error).toMatch(/passes now: remove the marker/)
    expect(r.knownFailures).toHaveLength(1)
    expect(r.knownFailures[0]!.line).toBe(7)
  })

  it('checks repository commands instead of running them', async () => {
    const good = await check(
      `${fence}sh\nnpm install @membrane/policy\nnpm run bench -- maglev/build   # one file\nnpx vitest run --project policy\nnpm start -w @membrane/example-embed-policy\nnode tools/bench.mjs l7proxy/http\n${fence}\n`,
    )
    expect(good.failures).toEqual([])
    expect(good.checked).toBe(1)
    const bad = await check(
      `${fence}sh\nnpm install @membrane/nope\nnpm install @membrane/test-utils\nnpm run nope\nnpx vitest run --project nope\nnpm run bench -- maglev/nope\n${fence}\n\n${fence}sh\nnpm install @membrane/policy\necho hi\n${fence}\n`,
    )
    const errors = bad.failures.map((f) => f.error)
    expect(errors).toEqual([
      'npm install @membrane/nope: no workspace package is named @membrane/nope',
      'npm install @membrane/test-utils: @membrane/test-utils is private',
      'npm script "nope" does not exist',
      'no vitest project named nope',
      'bench: packages/maglev/bench/nope.ts does not exist',
      'mixes repository commands (npm/npx/tools, checked) with commands to run: split the block',
    ])
  })

  it('runs repo blocks at the repository root, still checking their commands', async () => {
    const r = await check(
      `<!-- doctest: repo -->\n${fence}sh\ntest -f vitest.workspace.ts\n${fence}\n\n<!-- doctest: repo -->\n${fence}sh\nnpm run nope\n${fence}\n\n${fence}sh\ntest -f vitest.workspace.ts\n${fence}\n`,
    )
    expect(r.executed).toBe(1)
    expect(r.failures.map((f) => [f.line, f.error.split('\n')[0]])).toEqual([
      [7, 'npm script "nope" does not exist'],
      [11, 'exited 1, expected 0'],
    ])
  })

  it('keeps a background daemon running for the later blocks, then stops it', async () => {
    const r = await check(
      `<!-- doctest: background -->\n${fence}sh\necho $$ > daemon.pid\nexec sleep 600\n${fence}\n\n${fence}sh\nsleep 0.5\nkill -0 "$(cat daemon.pid)"\n${fence}\n`,
      ['--keep'],
    )
    expect(r.failures).toEqual([])
    expect(r.executed).toBe(2)
    const pid = Number(readFileSync(join(r.workDir!, 'daemon.pid'), 'utf8'))
    rmSync(r.workDir!, { recursive: true, force: true })
    expect(() => process.kill(pid, 0)).toThrow()
  })

  it('stops the daemons before a stop-daemons block (a cleanup after Ctrl-C)', async () => {
    const r = await check(
      `<!-- doctest: background -->\n${fence}sh\necho $$ > daemon.pid\nexec sleep 600\n${fence}\n\n<!-- doctest: stop-daemons -->\n${fence}sh\nsleep 0.2\n! kill -0 "$(cat daemon.pid)" 2>/dev/null\n${fence}\n`,
    )
    expect(r.failures).toEqual([])
    expect(r.executed).toBe(2)
  })

  it('fails a daemon that exits early with an error', async () => {
    const r = await check(
      `<!-- doctest: background -->\n${fence}sh\nexit 7\n${fence}\n\n${fence}sh\nsleep 0.5\n${fence}\n`,
    )
    expect(r.failures).toHaveLength(1)
    expect(r.failures[0]!.error).toMatch(/the daemon exited early \(status 7\)/)
  })
})

// Every README of the repository, one test each: a failure names the README, the block's line
// and the error. Blocks that need root and the kernel are skipped (and reported) without root,
// unless MEMBRANE_REQUIRE_KERNEL=1.
const readmes = execFileSync(process.execPath, [tool, '--list'], { cwd: root, encoding: 'utf8' })
  .split('\n')
  .filter(Boolean)

describe('README doc tests', () => {
  it.each(readmes)(
    '%s: every block runs (or is checked) as written',
    async (readme) => {
      const [report] = await doctest([readme])
      expect(report!.failures).toEqual([])
      expect(report!.blocks).toBeGreaterThan(0)
    },
    600_000,
  )
})
