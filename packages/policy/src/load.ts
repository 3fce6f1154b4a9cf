/**
 * YAML/JSON policy text -> plain objects, with bounded work: the text's length, the nesting
 * depth of its collections (checked by a linear scan before any parser runs, and on the result)
 * and the number of aliases a document may expand (a "billion laughs" bomb) are limited.
 */
import { parseAllDocuments } from 'yaml'
import { PolicyError } from './errors'

/** Limits of {@link loadPolicyObjects}. */
export interface PolicyLoadLimits {
  /** Longest text, in characters. Default 8 Mi (8 388 608). */
  maxLength?: number
  /**
   * Deepest nesting of collections (mappings and sequences). Default 64; real policies stay
   * under 15.
   */
  maxDepth?: number
  /** Most alias expansions per document (the yaml package's `maxAliasCount`). Default 100. */
  maxAliasCount?: number
}

/** The defaults of {@link PolicyLoadLimits}. */
const DEFAULT_POLICY_LOAD_LIMITS: Required<PolicyLoadLimits> = {
  maxLength: 8 * 1024 * 1024,
  maxDepth: 64,
  maxAliasCount: 100,
}

/**
 * Decode policy text (one JSON value, JSON or YAML documents separated by `---` lines, `List`
 * kinds and top-level arrays flattened) into plain objects, refusing text over the limits with a
 * `LIMIT` {@link PolicyError} and malformed text with a `SYNTAX` one, both naming the document.
 *
 * @example
 * loadPolicyObjects('kind: CiliumNetworkPolicy\nmetadata: { name: a }', { maxDepth: 32 })
 */
export function loadPolicyObjects(text: string, limits: PolicyLoadLimits = {}): unknown[] {
  const lim = { ...DEFAULT_POLICY_LOAD_LIMITS, ...limits }
  if (text.length > lim.maxLength) {
    throw new PolicyError(
      'LIMIT',
      `the text is ${text.length} characters; at most ${lim.maxLength} are accepted`,
    )
  }
  const deep = flowDepthExceeded(text, lim.maxDepth)
  if (deep) {
    throw new PolicyError(
      'LIMIT',
      `collections nest deeper than ${lim.maxDepth} levels at line ${deep.line}, column ${deep.column}`,
    )
  }
  const values = loadJson(text) ?? loadYaml(text, lim.maxAliasCount)
  values.forEach((v, i) => {
    if (depthOf(v, lim.maxDepth) > lim.maxDepth) {
      throw new PolicyError('LIMIT', `collections nest deeper than ${lim.maxDepth} levels`, {
        documentIndex: i,
      })
    }
  })
  return flatten(values)
}

/**
 * Where the nesting of flow collections (`[`, `{`) first exceeds `max`, or undefined. Quoted
 * scalars and comments are skipped; a bracket inside a plain scalar counts, which can only
 * overstate the depth. Linear in the text, so it runs before any parser sees it.
 */
export function flowDepthExceeded(
  text: string,
  max: number,
): { line: number; column: number } | undefined {
  let depth = 0
  let line = 1
  let lineStart = 0
  // The last character that was neither a space nor a tab: decides whether a quote opens a
  // quoted scalar (at the start of a value) or is part of a plain one (`don't`).
  let prev = '\n'
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (c === '\n') {
      line += 1
      lineStart = i + 1
      prev = c
      continue
    }
    if (c === ' ' || c === '\t' || c === '\r') continue
    if (c === '#' && (i === lineStart || /[ \t]/.test(text[i - 1]!))) {
      const end = text.indexOf('\n', i)
      i = (end < 0 ? text.length : end) - 1
      continue
    }
    if ((c === '"' || c === "'") && '\n[{,:-?'.includes(prev)) {
      i = skipQuoted(text, i, c)
      prev = c
      continue
    }
    if (c === '[' || c === '{') {
      depth += 1
      if (depth > max) return { line, column: i - lineStart + 1 }
    } else if ((c === ']' || c === '}') && depth > 0) depth -= 1
    prev = c
  }
  return undefined
}

/** Index of the closing quote of the scalar opened at `start` (or the end of the text). */
function skipQuoted(text: string, start: number, quote: string): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i]
    if (quote === '"' && c === '\\') i += 1
    else if (c === quote) {
      // '' inside a single-quoted scalar is an escaped quote.
      if (quote === "'" && text[i + 1] === "'") i += 1
      else return i
    }
  }
  return text.length
}

/** Nesting depth of a decoded value, counting no further than `max + 1` (iterative). */
function depthOf(value: unknown, max: number): number {
  let deepest = 0
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length > 0) {
    const [v, d] = stack.pop()!
    if (v === null || typeof v !== 'object') continue
    const here = d + 1
    if (here > deepest) deepest = here
    if (deepest > max) return deepest
    for (const child of Object.values(v)) stack.push([child, here])
  }
  return deepest
}

/** Fast path: a JSON value, or JSON documents separated by `---` lines. */
function loadJson(text: string): unknown[] | undefined {
  const chunks = text.split(/^---[ \t]*$/m)
  const out: unknown[] = []
  for (const c of chunks) {
    const t = c.trim()
    if (t === '') continue
    if (t[0] !== '{' && t[0] !== '[') return undefined
    try {
      out.push(JSON.parse(t))
    } catch {
      return undefined
    }
  }
  return out
}

function loadYaml(text: string, maxAliasCount: number): unknown[] {
  // A line that is exactly `---` always starts a new YAML document, so documents can be parsed
  // one by one (much faster than one big stream with the yaml package).
  const chunks = text.split(/^---[ \t]*$/m).filter((c) => c.trim() !== '')
  const values: unknown[] = []
  chunks.forEach((chunk, i) => {
    try {
      const docs = parseAllDocuments(chunk, { uniqueKeys: true })
      const list = Array.isArray(docs) ? docs : [docs]
      for (const d of list) {
        const err = d.errors[0]
        if (err) {
          throw new PolicyError('SYNTAX', `invalid YAML/JSON: ${err.message.split('\n')[0]}`, {
            documentIndex: i,
            cause: err,
          })
        }
        values.push(d.toJS({ maxAliasCount }) as unknown)
      }
    } catch (e) {
      if (e instanceof PolicyError) throw e
      // The yaml package refuses an alias bomb with a ReferenceError; a structure deep enough
      // to exhaust the stack throws a RangeError. Both are the text's fault.
      throw new PolicyError(
        e instanceof RangeError ? 'LIMIT' : 'SYNTAX',
        `invalid YAML: ${(e as Error).message}`,
        { documentIndex: i, cause: e },
      )
    }
  })
  return values
}

function flatten(values: unknown[]): unknown[] {
  const out: unknown[] = []
  for (const v of values) {
    if (v === null || v === undefined) continue
    if (Array.isArray(v)) out.push(...v)
    else if (
      typeof v === 'object' &&
      typeof (v as { kind?: unknown }).kind === 'string' &&
      (v as { kind: string }).kind.endsWith('List') &&
      Array.isArray((v as { items?: unknown }).items)
    )
      out.push(...(v as { items: unknown[] }).items)
    else out.push(v)
  }
  return out
}
