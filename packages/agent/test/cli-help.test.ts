import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { COMMANDS, runCli } from '../src/cli'
import { defaultConfig } from '../src/config'
import { agentFlags, MEMBRANE_BIN, testConfig } from './helpers'

// No agent and no kernel needed: help, version, usage errors and "no agent" failures only.

async function cli(...args: string[]) {
  let out = ''
  let err = ''
  const code = await runCli(args, {
    out: (t) => {
      out += t
    },
    err: (t) => {
      err += t
    },
  })
  return { code, out, err }
}

const version = (
  JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as {
    version: string
  }
).version

// The paths `membrane agent` would use by default, and whether they existed before this file.
const defaults = defaultConfig()
const defaultPaths = [defaults.bpffsRoot, defaults.stateDir, join(defaults.socketPath, '..')]
const existedBefore = new Map(defaultPaths.map((p) => [p, existsSync(p)]))

// Every command and every word that groups commands (`endpoint`, `bpf policy`), from the CLI's
// own table: a new command is walked without editing this file.
const commands = COMMANDS.map((c) => c.path.join(' '))
const groups = [
  ...new Set(
    COMMANDS.flatMap((c) => c.path.slice(1).map((_, i) => c.path.slice(0, i + 1).join(' '))),
  ),
].filter((g) => !commands.includes(g))

describe('membrane --help at every level prints usage, exits 0 and touches nothing', () => {
  // Private paths that do not exist yet: an agent started by mistake would create them.
  const { config, cleanupDirs } = testConfig()
  const privatePaths = [config.bpffsRoot, config.stateDir, join(config.socketPath, '..')]
  afterAll(() => {
    for (const p of [...privatePaths, ...defaultPaths]) {
      // Nothing may have been made; if it was, the assertions below have failed already.
      if (!existedBefore.get(p) && existsSync(p)) console.error(`left behind: ${p}`)
    }
    cleanupDirs()
  })
  const untouched = () => {
    for (const p of privatePaths) expect(existsSync(p), p).toBe(false)
    for (const p of defaultPaths) expect(existsSync(p), p).toBe(existedBefore.get(p))
  }

  it('the table has the commands the README documents', () => {
    expect(commands).toEqual(
      expect.arrayContaining(['agent', 'agent cleanup', 'endpoint delete', 'policy trace']),
    )
    expect(groups).toEqual(
      expect.arrayContaining(['endpoint', 'policy', 'service', 'identity', 'bpf', 'bpf policy']),
    )
  })

  it.each(commands)('membrane %s --help / -h / help', async (words) => {
    const path = words.split(' ')
    for (const argv of [
      [...path, '--help'],
      [...path, '-h'],
      // Help wins over every other flag, even ones that would start or purge an agent.
      [...path, '--help', ...agentFlags(config)],
      [...path, '-h', '--socket', config.socketPath, '-o', 'json'],
      ['help', ...path],
    ]) {
      const r = await cli(...argv)
      expect(r.code, argv.join(' ')).toBe(0)
      expect(r.out, argv.join(' ')).toMatch(new RegExp(`^Usage: membrane ${words}\\b`, 'm'))
      expect(r.err, argv.join(' ')).toBe('')
    }
    untouched()
  })

  it.each(groups)('membrane %s --help / -h / help lists its commands', async (words) => {
    for (const argv of [
      [...words.split(' '), '--help'],
      [...words.split(' '), '-h'],
      ['help', ...words.split(' ')],
    ]) {
      const r = await cli(...argv)
      expect(r.code, argv.join(' ')).toBe(0)
      expect(r.out).toContain(`Usage: membrane ${words} <command>`)
      for (const c of commands.filter((c) => c.startsWith(`${words} `))) {
        expect(r.out).toContain(c)
      }
    }
    untouched()
  })

  it('membrane, membrane --help, -h and help list every command', async () => {
    for (const argv of [[], ['--help'], ['-h'], ['help']]) {
      const r = await cli(...argv)
      expect(r.code).toBe(0)
      for (const c of commands) expect(r.out).toContain(`  ${c} `)
    }
  })
})

describe('membrane exit codes and errors', () => {
  const { config, cleanupDirs } = testConfig()
  afterAll(cleanupDirs)
  // Nothing listens there; the directory exists (a missing one has its own message: client.test.ts).
  const nowhere = config.socketPath
  mkdirSync(dirname(nowhere), { recursive: true })

  it('--version and -V print the package version, exit 0', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await cli(flag)
      expect(r).toEqual({ code: 0, out: `membrane ${version}\n`, err: '' })
    }
  })

  it('1: the agent is not there (plain, and a JSON object on stderr under -o json)', async () => {
    const plain = await cli('status', '--socket', nowhere)
    expect(plain.code).toBe(1)
    expect(plain.err).toContain(`no agent is listening on ${nowhere}`)
    const json = await cli('endpoint', 'list', '--socket', nowhere, '-o', 'json')
    expect(json.code).toBe(1)
    expect(json.out).toBe('')
    expect(JSON.parse(json.err)).toEqual({
      error: { code: 'UNAVAILABLE', message: expect.stringContaining(nowhere) },
    })
    // observe speaks gRPC to the observer socket next to the API socket: the same rule.
    const observe = await cli('observe', '--socket', nowhere, '-o', 'json')
    expect([observe.code, observe.out]).toEqual([1, ''])
    expect(JSON.parse(observe.err).error).toMatchObject({ code: 'UNAVAILABLE' })
  })

  it('2: usage errors and bad input, the same code under -o json', async () => {
    const cases: [string[], RegExp][] = [
      [['endpoint', 'create'], /--name is required/],
      [['endpoint', 'delete'], /endpoint needs NAMESPACE\/NAME/],
      [['endpoint', 'delete', 'Bad/Name'], /NAMESPACE\/NAME/],
      [['endpoint', 'frobnicate'], /endpoint has: create, list, get, delete/],
      [['endpoint'], /endpoint has: create, list, get, delete/],
      [['bpf', 'policy'], /bpf policy has: get/],
      [['identity', 'show'], /identity has: list/],
      [['nope'], /unknown command "nope"/],
      [['help', 'nope'], /unknown command "nope"/],
      [['help', 'endpoint', 'nope'], /endpoint has: create, list, get, delete/],
      [['help', 'endpoint', 'list', 'nope'], /unknown command "endpoint list nope"/],
      [['status', '--frobnicate'], /Unknown option '--frobnicate'/],
      [['policy', 'import', '-f', join(config.stateDir, 'missing.yaml')], /cannot read .*missing/],
      [
        ['policy', 'trace', '--from', 'a', '--to', 'b', '--port', 'http'],
        /--port expects a number/,
      ],
      [['observe', '--verdict'], /verdict/],
    ]
    for (const [args, message] of cases) {
      const plain = await cli(...args, '--socket', nowhere)
      expect(plain.code, args.join(' ')).toBe(2)
      expect(plain.err, args.join(' ')).toMatch(message)
      expect(plain.err.split('\n').length, args.join(' ')).toBeLessThanOrEqual(3)
      const json = await cli(...args, '--socket', nowhere, '-o', 'json')
      expect(json.code, `${args.join(' ')} -o json`).toBe(2)
      expect(json.out, `${args.join(' ')} -o json`).toBe('')
      const e = JSON.parse(json.err) as { error: { code: string; message: string } }
      expect(e.error.code, args.join(' ')).toBe('INVALID_INPUT')
      expect(e.error.message, args.join(' ')).toMatch(message)
    }
  })
})

describe('the membrane executable', () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [MEMBRANE_BIN, ...args], { encoding: 'utf8', timeout: 60_000 })

  it('--version, --help and a JSON error through the real bin', () => {
    const v = run('--version')
    expect([v.status, v.stdout, v.stderr]).toEqual([0, `membrane ${version}\n`, ''])
    const h = run('agent', 'cleanup', '--help')
    expect(h.status).toBe(0)
    expect(h.stdout).toMatch(/^Usage: membrane agent cleanup/)
    const e = run('policy', 'import', '-f', '/nonexistent/p.yaml', '-o', 'json')
    expect(e.status).toBe(2)
    expect(JSON.parse(e.stderr).error).toMatchObject({ code: 'INVALID_INPUT', field: '-f' })
  })
})
