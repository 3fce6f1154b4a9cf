/**
 * An RE2-syntax regular expression engine with linear-time matching (Thompson NFA simulation:
 * no backtracking, so no catastrophic patterns or inputs). It validates the HTTP method/path/
 * host patterns of L7 rules when policies are parsed, and matches them for trace() AND in the
 * @membrane/l7proxy HTTP proxy: one engine, so a pattern that validates is the pattern that
 * runs. Cilium (Envoy) treats these patterns as RE2, matched against the whole value.
 *
 * Semantics are RE2's, on the code points of a JS string (a differential test checks them
 * against Google's RE2 compiled to wasm): literals and escapes (`\x41`, `\x{1F600}`, octal
 * `\012`, `\a \f \t \n \r \v`, `\Q...\E`, any escaped ASCII punctuation), `.`, classes
 * `[...]` / `[^...]` with ranges, `\d \D \w \W \s \S` (ASCII), POSIX classes `[[:alpha:]]`,
 * groups `(...)` `(?:...)` `(?P<name>...)` `(?<name>...)`, flags `(?imsU-imsU)` and
 * `(?flags:...)` (i: Unicode simple case folding; m: `^`/`$` at line ends; s: `.` matches
 * `\n`; U: ungreedy, which does not change a full match), alternation, `* + ? {n} {n,}
 * {n,m}` (n, m <= 1000) and their lazy forms, anchors `^ $ \A \z`, word boundaries `\b \B`.
 * Rejected: backreferences, lookaround and, although RE2 has them, Unicode classes (`\pL`,
 * `\p{Greek}`) and `\C`; a parse error names the offset.
 */

/** A syntax error in a pattern; `offset` is the position in the pattern. */
export class Re2SyntaxError extends Error {
  override readonly name = 'Re2SyntaxError'
  constructor(
    message: string,
    readonly pattern: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset} in ${JSON.stringify(pattern)}`)
  }
}

type CharTest = (c: number) => boolean
type Assertion = 'bol' | 'eol' | 'bot' | 'eot' | 'wb' | 'nwb'
type Node =
  | {
      t: 'lit'
      test: CharTest
      /** One code point, no folding (for the fast paths). */
      cp?: number
      /** A `.` that does not match `\n` (for the fast paths). */
      dot?: true
    }
  | { t: 'cat'; items: Node[] }
  | { t: 'alt'; items: Node[] }
  | { t: 'rep'; item: Node; min: number; max: number } // max -1 = unbounded
  | { t: 'assert'; kind: Assertion }
  | { t: 'empty' }

interface Flags {
  i: boolean
  m: boolean
  s: boolean
  U: boolean
}

const MAX_REPEAT = 1000
const MAX_PROGRAM = 20_000

const isDigit: CharTest = (c) => c >= 48 && c <= 57
const isWord: CharTest = (c) =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95
// RE2's \s is [\t\n\f\r ] (no \v).
const isSpace: CharTest = (c) => c === 32 || c === 9 || c === 10 || c === 12 || c === 13

const POSIX: Record<string, CharTest> = {
  alnum: (c) => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122),
  alpha: (c) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122),
  ascii: (c) => c <= 127,
  blank: (c) => c === 32 || c === 9,
  cntrl: (c) => c < 32 || c === 127,
  digit: isDigit,
  graph: (c) => c > 32 && c < 127,
  lower: (c) => c >= 97 && c <= 122,
  print: (c) => c >= 32 && c < 127,
  punct: (c) =>
    c > 32 && c < 127 && !((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)),
  space: (c) => isSpace(c) || c === 11,
  upper: (c) => c >= 65 && c <= 90,
  word: isWord,
  xdigit: (c) => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102),
}

// ---- case folding (RE2's (?i): Unicode simple case folding orbits) ----

/** A single code point's case mapping, or the code point itself when it maps to several. */
function mapOne(c: number, upper: boolean): number {
  const s = String.fromCodePoint(c)
  const m = upper ? s.toUpperCase() : s.toLowerCase()
  const r = m.codePointAt(0) as number
  return m.length === (r > 0xffff ? 2 : 1) ? r : c
}

/** The representative of a code point's fold orbit. */
function canon(c: number): number {
  return mapOne(mapOne(c, true), false)
}

let orbits: Map<number, number[]> | undefined

/** Every code point that folds to the same representative as `c` (including `c`). */
function orbit(c: number): readonly number[] {
  if (c < 128) {
    const l = c | 0x20
    if (l < 97 || l > 122) return [c]
    // K (U+212A KELVIN SIGN) and ſ (U+017F LONG S) fold with k and s.
    if (l === 107) return [c, c ^ 0x20, 0x212a]
    if (l === 115) return [c, c ^ 0x20, 0x17f]
    return [c, c ^ 0x20]
  }
  if (!orbits) {
    // Built once, on the first non-ASCII character a case-insensitive pattern meets.
    orbits = new Map()
    for (let cp = 0; cp < 0x20000; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue
      const k = canon(cp)
      if (k === cp && mapOne(cp, true) === cp && mapOne(cp, false) === cp) continue
      let list = orbits.get(k)
      if (!list) {
        list = [k]
        orbits.set(k, list)
      }
      if (!list.includes(cp)) list.push(cp)
    }
  }
  return orbits.get(canon(c)) ?? [c]
}

function folded(test: CharTest): CharTest {
  return (c) => {
    if (test(c)) return true
    for (const o of orbit(c)) if (o !== c && test(o)) return true
    return false
  }
}

// ---- parser ----

class Parser {
  pos = 0
  flags: Flags = { i: false, m: false, s: false, U: false }
  readonly names = new Set<string>()
  constructor(readonly src: string) {}

  fail(msg: string, at = this.pos): never {
    throw new Re2SyntaxError(msg, this.src, at)
  }

  /** The code point at `pos` (undefined at the end). */
  peek(): number | undefined {
    return this.src.codePointAt(this.pos)
  }

  next(): number {
    const c = this.src.codePointAt(this.pos) as number
    this.pos += c > 0xffff ? 2 : 1
    return c
  }

  parse(): Node {
    const n = this.alt()
    if (this.pos < this.src.length) this.fail(`unexpected ${JSON.stringify(this.src[this.pos])}`)
    return n
  }

  alt(): Node {
    const saved = { ...this.flags }
    const items = [this.cat()]
    while (this.src[this.pos] === '|') {
      this.pos++
      items.push(this.cat())
    }
    this.flags = saved // a `(?i)` inside a group ends with the group
    return items.length === 1 ? (items[0] as Node) : { t: 'alt', items }
  }

  cat(): Node {
    const items: Node[] = []
    while (this.pos < this.src.length) {
      const c = this.src[this.pos]
      if (c === '|' || c === ')') break
      const atom = this.atom()
      if (atom === undefined) continue // a flag group: changes flags, matches nothing
      if (Array.isArray(atom)) {
        items.push(...atom)
        continue
      }
      items.push(this.quantifiers(atom))
    }
    if (items.length === 0) return { t: 'empty' }
    return items.length === 1 ? (items[0] as Node) : { t: 'cat', items }
  }

  quantifiers(atom: Node): Node {
    let repeated = false
    for (;;) {
      const c = this.src[this.pos]
      let min: number
      let max: number
      const at = this.pos
      if (c === '*') {
        min = 0
        max = -1
        this.pos++
      } else if (c === '+') {
        min = 1
        max = -1
        this.pos++
      } else if (c === '?') {
        min = 0
        max = 1
        this.pos++
      } else if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.pos))
        if (!m) return atom // RE2 treats a `{` that starts no repeat as a literal
        min = Number(m[1])
        max = m[2] === undefined ? min : m[3] === '' ? -1 : Number(m[3])
        if (min > MAX_REPEAT || max > MAX_REPEAT) this.fail(`repeat count above ${MAX_REPEAT}`, at)
        if (max !== -1 && max < min) this.fail('invalid repeat range', at)
        this.pos += m[0].length
      } else {
        return atom
      }
      if (repeated) this.fail('invalid nested repetition operator', at)
      if (atom.t === 'empty') this.fail('missing argument to repetition operator', at)
      if (this.src[this.pos] === '?') this.pos++ // lazy: same language for a full match
      atom = { t: 'rep', item: atom, min, max }
      repeated = true
    }
  }

  lit(test: CharTest, cp?: number): Node {
    if (this.flags.i) return { t: 'lit', test: folded(test) }
    return cp === undefined ? { t: 'lit', test } : { t: 'lit', test, cp }
  }

  litCp(cp: number): Node {
    return this.lit((ch) => ch === cp, cp)
  }

  /** One atom; undefined for a flag group; a list for `\Q...\E`. */
  atom(): Node | Node[] | undefined {
    const c = this.src[this.pos] as string
    const at = this.pos
    switch (c) {
      case '(': {
        this.pos++
        const saved = { ...this.flags }
        if (this.src[this.pos] === '?') {
          const rest = this.src.slice(this.pos)
          const named = /^\?P?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest)
          if (rest.startsWith('?:')) this.pos += 2
          else if (named) {
            if (this.names.has(named[1] as string)) this.fail('duplicate capture group name', at)
            this.names.add(named[1] as string)
            this.pos += named[0].length
          } else if (/^\?(<?[=!])/.test(rest)) {
            this.fail('lookaround is not supported by RE2', at)
          } else {
            // Flags: (?imsU), (?-i), (?i-s), and (?flags:re) scoped to the group.
            let i = this.pos + 1
            let negated = false
            let any = false
            let sawAfterMinus = false
            for (; ; i++) {
              const f = this.src[i]
              if (f === 'i' || f === 'm' || f === 's' || f === 'U') {
                this.flags[f] = !negated
                any = true
                if (negated) sawAfterMinus = true
              } else if (f === '-' && !negated) negated = true
              else if ((f === ':' || f === ')') && any && (!negated || sawAfterMinus)) break
              else this.fail('invalid or unsupported group flags', at)
            }
            this.pos = i + 1
            if (this.src[i] === ')') return undefined // (?i): for the rest of the group
          }
        }
        const inner = this.alt()
        if (this.src[this.pos] !== ')') this.fail('missing closing )', at)
        this.pos++
        this.flags = saved
        return inner
      }
      case ')':
        return this.fail('unexpected )')
      case '*':
      case '+':
      case '?':
        return this.fail('missing argument to repetition operator')
      case '{':
        if (/^\{\d+(,\d*)?\}/.test(this.src.slice(this.pos)))
          this.fail('missing argument to repetition operator')
        break
      case '[':
        return this.lit(this.cls())
      case '.': {
        this.pos++
        if (this.flags.s) return { t: 'lit', test: () => true }
        return { t: 'lit', test: (ch) => ch !== 10, dot: true }
      }
      case '^':
        this.pos++
        return { t: 'assert', kind: this.flags.m ? 'bol' : 'bot' }
      case '$':
        this.pos++
        return { t: 'assert', kind: this.flags.m ? 'eol' : 'eot' }
      case '\\': {
        if (this.src.startsWith('\\Q', this.pos)) {
          this.pos += 2
          const end = this.src.indexOf('\\E', this.pos)
          const text = this.src.slice(this.pos, end < 0 ? undefined : end)
          this.pos = end < 0 ? this.src.length : end + 2
          const lits = [...text].map((ch) => this.litCp(ch.codePointAt(0) as number))
          if (lits.length === 0) return undefined
          // A quantifier after \Q...\E applies to its last character.
          const last = this.quantifiers(lits.pop() as Node)
          return [...lits, last]
        }
        const e = this.escape(false)
        if (typeof e === 'string') return { t: 'assert', kind: e }
        return typeof e === 'number' ? this.litCp(e) : this.lit(e)
      }
    }
    return this.litCp(this.next())
  }

  /** Parse an escape at `pos` (the backslash): a code point, a class, or an assertion. */
  escape(inClass: boolean): number | CharTest | Assertion {
    const at = this.pos
    this.pos++
    const c = this.src[this.pos]
    if (c === undefined) this.fail('trailing backslash', at)
    this.pos++
    switch (c) {
      case 'd':
        return isDigit
      case 'D':
        return (ch) => !isDigit(ch)
      case 'w':
        return isWord
      case 'W':
        return (ch) => !isWord(ch)
      case 's':
        return isSpace
      case 'S':
        return (ch) => !isSpace(ch)
      case 'a':
        return 7
      case 't':
        return 9
      case 'n':
        return 10
      case 'v':
        return 11
      case 'f':
        return 12
      case 'r':
        return 13
      case 'A':
      case 'z':
      case 'b':
      case 'B':
        if (inClass) this.fail('invalid escape in class', at)
        return c === 'A' ? 'bot' : c === 'z' ? 'eot' : c === 'b' ? 'wb' : 'nwb'
      case 'x': {
        const m = /^([0-9a-fA-F]{2}|\{[0-9a-fA-F]+\})/.exec(this.src.slice(this.pos))
        if (!m) this.fail('invalid \\x escape', at)
        const v = Number.parseInt(m[0].replace(/[{}]/g, ''), 16)
        if (v > 0x10ffff) this.fail('invalid \\x escape', at)
        this.pos += m[0].length
        return v
      }
    }
    if (/[0-7]/.test(c)) {
      // Octal: \0, or \1-\7 followed by another octal digit (a lone \1 is a backreference).
      const m = /^[0-7]{0,2}/.exec(this.src.slice(this.pos)) as RegExpExecArray
      if (c !== '0' && m[0] === '') this.fail('backreferences are not supported by RE2', at)
      this.pos += m[0].length
      return Number.parseInt(c + m[0], 8)
    }
    const code = c.charCodeAt(0)
    if (code >= 128 || /[0-9A-Za-z]/.test(c)) this.fail(`invalid escape \\${c}`, at)
    return code
  }

  cls(): CharTest {
    const at = this.pos
    this.pos++ // [
    let negate = false
    if (this.src[this.pos] === '^') {
      negate = true
      this.pos++
    }
    const tests: CharTest[] = []
    let first = true
    for (;;) {
      const c = this.src[this.pos]
      if (c === undefined) this.fail('missing closing ]', at)
      if (c === ']' && !first) {
        this.pos++
        break
      }
      first = false
      if (c === '[' && this.src[this.pos + 1] === ':') {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(this.src.slice(this.pos))
        if (!m || !POSIX[m[2] as string]) this.fail('invalid POSIX class', this.pos)
        const t = POSIX[m[2] as string] as CharTest
        tests.push(m[1] ? (ch) => !t(ch) : t)
        this.pos += m[0].length
        continue
      }
      const lo = this.classAtom()
      if (typeof lo === 'function') {
        tests.push(lo)
        continue
      }
      if (
        this.src[this.pos] === '-' &&
        this.src[this.pos + 1] !== ']' &&
        this.src[this.pos + 1] !== undefined
      ) {
        const dash = this.pos
        this.pos++
        const hi = this.classAtom()
        if (typeof hi === 'function' || hi < lo) this.fail('invalid character class range', dash)
        tests.push((ch) => ch >= lo && ch <= hi)
      } else {
        tests.push((ch) => ch === lo)
      }
    }
    // Fold first, then negate: (?i)[^a] excludes both a and A, as in RE2.
    const any: CharTest = (ch) => tests.some((t) => t(ch))
    const set = this.flags.i ? folded(any) : any
    return negate ? (ch) => !set(ch) : set
  }

  classAtom(): number | CharTest {
    if (this.src[this.pos] === '\\') {
      const at = this.pos
      const e = this.escape(true)
      if (typeof e === 'string') this.fail('invalid escape in class', at)
      return e
    }
    return this.next()
  }
}

// ---- compile to an NFA program ----
type Inst =
  | { op: 'char'; test: CharTest; next: number }
  | { op: 'split'; a: number; b: number }
  | { op: 'assert'; kind: Assertion; next: number }
  | { op: 'match' }

class Compiler {
  prog: Inst[] = []
  constructor(readonly pattern: string) {}

  emit(i: Inst): number {
    if (this.prog.length >= MAX_PROGRAM)
      throw new Re2SyntaxError('pattern too large', this.pattern, 0)
    this.prog.push(i)
    return this.prog.length - 1
  }

  /** Compile `n` so that it continues at `next`; returns the entry point. Built back to front. */
  build(n: Node, next: number): number {
    switch (n.t) {
      case 'empty':
        return next
      case 'lit':
        return this.emit({ op: 'char', test: n.test, next })
      case 'assert':
        return this.emit({ op: 'assert', kind: n.kind, next })
      case 'cat': {
        let entry = next
        for (let i = n.items.length - 1; i >= 0; i--) entry = this.build(n.items[i] as Node, entry)
        return entry
      }
      case 'alt': {
        const entries = n.items.map((it) => this.build(it, next))
        let entry = entries[entries.length - 1] as number
        for (let i = entries.length - 2; i >= 0; i--)
          entry = this.emit({ op: 'split', a: entries[i] as number, b: entry })
        return entry
      }
      case 'rep': {
        let entry = next
        if (n.max === -1) {
          // item* looping back: split -> item -> split
          const split = this.emit({ op: 'split', a: -1, b: next })
          const body = this.build(n.item, split)
          ;(this.prog[split] as { a: number }).a = body
          entry = split
        } else {
          // (max - min) optional copies, each one either taken or skipped to `next`.
          for (let i = n.max; i > n.min; i--) {
            const body = this.build(n.item, entry)
            entry = this.emit({ op: 'split', a: body, b: next })
          }
        }
        for (let i = 0; i < n.min; i++) entry = this.build(n.item, entry)
        return entry
      }
    }
  }
}

/** Does the assertion hold between code points `prev` and `next` (-1 = none)? */
function holds(kind: Assertion, prev: number, next: number): boolean {
  switch (kind) {
    case 'bot':
      return prev === -1
    case 'eot':
      return next === -1
    case 'bol':
      return prev === -1 || prev === 10
    case 'eol':
      return next === -1 || next === 10
    case 'wb':
    case 'nwb': {
      const at = (prev !== -1 && isWord(prev)) !== (next !== -1 && isWord(next))
      return kind === 'wb' ? at : !at
    }
  }
}

/** The Thompson simulation of a program: O(input x program), whatever the pattern. */
function nfaMatcher(prog: readonly Inst[], start: number): (input: string) => boolean {
  return (input) => {
    const cps: number[] = []
    for (let i = 0; i < input.length; i++) {
      const c = input.codePointAt(i) as number
      cps.push(c)
      if (c > 0xffff) i++
    }
    let cur: number[] = []
    let nxt: number[] = []
    const mark = new Int32Array(prog.length).fill(-1)
    const stack: number[] = []
    let gen = 0
    const add = (list: number[], pc: number, pos: number) => {
      const prev = pos > 0 ? (cps[pos - 1] as number) : -1
      const next = pos < cps.length ? (cps[pos] as number) : -1
      stack.push(pc)
      while (stack.length) {
        const p = stack.pop() as number
        if (mark[p] === gen) continue
        mark[p] = gen
        const inst = prog[p] as Inst
        if (inst.op === 'split') stack.push(inst.b, inst.a)
        else if (inst.op === 'assert') {
          if (holds(inst.kind, prev, next)) stack.push(inst.next)
        } else list.push(p)
      }
    }
    add(cur, start, 0)
    for (let i = 0; i < cps.length; i++) {
      const ch = cps[i] as number
      gen++
      nxt.length = 0
      for (const p of cur) {
        const inst = prog[p] as Inst
        if (inst.op === 'char' && inst.test(ch)) add(nxt, inst.next, i + 1)
      }
      ;[cur, nxt] = [nxt, cur]
      if (cur.length === 0) return false
    }
    return cur.some((p) => (prog[p] as Inst).op === 'match')
  }
}

/** The literal string of a node made of unfolded single code points only, else undefined. */
function literal(n: Node): string | undefined {
  if (n.t === 'lit') return n.cp === undefined ? undefined : String.fromCodePoint(n.cp)
  if (n.t === 'empty') return ''
  if (n.t !== 'cat') return undefined
  let s = ''
  for (const it of n.items) {
    const l = literal(it)
    if (l === undefined) return undefined
    s += l
  }
  return s
}

/** A node that is `.*` without the s flag (any run of code points but `\n`). */
function isDotStar(n: Node | undefined): boolean {
  return n?.t === 'rep' && n.min === 0 && n.max === -1 && n.item.t === 'lit' && n.item.dot === true
}

/**
 * A linear matcher for the common rule shapes, decided on the parsed pattern: a literal
 * (`GET`), an alternation of literals (`GET|POST`), a literal followed by `.*` (`/v1/.*`).
 * Anything else runs on the NFA.
 */
function fastPath(ast: Node): ((input: string) => boolean) | undefined {
  const lit = literal(ast)
  if (lit !== undefined) return (s) => s === lit
  if (ast.t === 'alt') {
    const set = new Set<string>()
    for (const it of ast.items) {
      const l = literal(it)
      if (l === undefined) return undefined
      set.add(l)
    }
    return (s) => set.has(s)
  }
  if (isDotStar(ast)) return (s) => !s.includes('\n')
  if (ast.t === 'cat' && isDotStar(ast.items[ast.items.length - 1])) {
    const prefix = literal({ t: 'cat', items: ast.items.slice(0, -1) })
    if (prefix !== undefined)
      return (s) => s.startsWith(prefix) && s.indexOf('\n', prefix.length) < 0
  }
  return undefined
}

/** A compiled pattern. */
export interface Re2Pattern {
  readonly source: string
  /** Does the whole `input` match (RE2 full match, as Envoy's safe_regex)? */
  fullMatch(input: string): boolean
}

/**
 * Compile an RE2-syntax pattern for full matching. Throws {@link Re2SyntaxError} for invalid or
 * unsupported syntax. Matching is linear in the input; answers for short inputs (methods,
 * hosts, most paths) are memoized per pattern, as requests repeat them.
 *
 * @example compileRe2('/v1/.*').fullMatch('/v1/request-landing') // true
 */
export function compileRe2(pattern: string): Re2Pattern {
  const ast = new Parser(pattern).parse()
  const c = new Compiler(pattern)
  const match = c.emit({ op: 'match' })
  const start = c.build(ast, match)
  const fast = fastPath(ast)
  if (fast) return { source: pattern, fullMatch: fast }
  const run = nfaMatcher(c.prog, start)
  const memo = new Map<string, boolean>()
  return {
    source: pattern,
    fullMatch(input: string): boolean {
      if (input.length > 256) return run(input)
      let r = memo.get(input)
      if (r === undefined) {
        r = run(input)
        if (memo.size >= 1024) memo.clear()
        memo.set(input, r)
      }
      return r
    },
  }
}

/** Check an RE2 pattern; returns the error message or undefined when it is valid. */
export function re2SyntaxError(pattern: string): string | undefined {
  try {
    compileRe2(pattern)
    return undefined
  } catch (e) {
    return e instanceof Re2SyntaxError ? e.message : String(e)
  }
}
