import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { root } from './_registry'

/**
 * The commit habits of ../shared/CONVENTIONS.md, checked rather than hoped for: a subject of at
 * most 72 characters and a body that says why. Older history predates the rule, so only commits
 * after RULE_SINCE are held to it. A shallow clone that lacks RULE_SINCE checks HEAD alone.
 */
const RULE_SINCE = '8b89daf'
const MAX_SUBJECT = 72

interface Commit {
  hash: string
  subject: string
  body: string
}

function git(...args: string[]): string {
  return execFileSync('git', args, { cwd: root, encoding: 'utf8' })
}

function commits(range: string[]): Commit[] {
  const out = git('log', '--no-merges', '--format=%h%x1f%s%x1f%b%x1e', ...range)
  return out
    .split('\x1e')
    .map((c) => c.trim())
    .filter(Boolean)
    .map((c) => {
      const [hash = '', subject = '', body = ''] = c.split('\x1f')
      return { hash, subject, body: body.trim() }
    })
}

function inGitCheckout(): boolean {
  try {
    return git('rev-parse', '--is-inside-work-tree').trim() === 'true'
  } catch {
    return false
  }
}

function known(rev: string): boolean {
  try {
    git('cat-file', '-e', `${rev}^{commit}`)
    return true
  } catch {
    return false
  }
}

describe.runIf(inGitCheckout())('commit messages', () => {
  const list = known(RULE_SINCE) ? commits([`${RULE_SINCE}..HEAD`]) : commits(['-1', 'HEAD'])

  it(`every subject is at most ${MAX_SUBJECT} characters`, () => {
    const long = list.filter((c) => c.subject.length > MAX_SUBJECT)
    expect(long.map((c) => `${c.hash} (${c.subject.length}): ${c.subject}`)).toEqual([])
  })

  it('every commit has a body that says why', () => {
    const bare = list.filter((c) => c.body.length < 20)
    expect(bare.map((c) => `${c.hash}: ${c.subject}`)).toEqual([])
  })
})
