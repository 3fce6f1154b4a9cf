/**
 * A small RE2-syntax regular expression engine with linear-time matching (Thompson NFA
 * simulation): no backtracking, so no catastrophic patterns. Used to validate and evaluate the
 * HTTP method/path/host regexes of L7 rules, which Cilium (Envoy) treats as RE2, matched in full.
 *
 * Supported: literals and escapes, `.`, classes `[...]` / `[^...]` with ranges, `\d \D \w \W \s
 * \S`, POSIX classes `[[:alpha:]]`, groups `(...)` `(?:...)` `(?P<name>...)`, a leading `(?i)`,
 * alternation, `* + ? {n} {n,} {n,m}` (and their lazy forms), anchors `^ $ \A \z`.
 * Rejected (not RE2): backreferences and lookaround.
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
type Node =
  | { t: 'lit'; test: CharTest }
  | { t: 'cat'; items: Node[] }
  | { t: 'alt'; items: Node[] }
  | { t: 'rep'; item: Node; min: number; max: number } // max -1 = unbounded
  | { t: 'bol' }
  | { t: 'eol' }
  | { t: 'empty' }

const MAX_REPEAT = 1000
const MAX_PROGRAM = 20_000

const isDigit: CharTest = (c) => c >= 48 && c <= 57
const isWord: CharTest = (c) =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95
const isSpace: CharTest = (c) => c === 32 || (c >= 9 && c <= 13)

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
  punct: (c) => (c > 32 && c < 127 && !isWord(c)) || c === 95,
  space: isSpace,
  upper: (c) => c >= 65 && c <= 90,
  word: isWord,
  xdigit: (c) => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102),
}

class Parser {
  pos = 0
  foldCase = false
  constructor(readonly src: string) {}

  fail(msg: string, at = this.pos): never {
    throw new Re2SyntaxError(msg, this.src, at)
  }

  parse(): Node {
    if (this.src.startsWith('(?i)')) {
      this.foldCase = true
      this.pos = 4
    }
    const n = this.alt()
    if (this.pos < this.src.length) this.fail(`unexpected ${JSON.stringify(this.src[this.pos])}`)
    return n
  }

  alt(): Node {
    const items = [this.cat()]
    while (this.src[this.pos] === '|') {
      this.pos++
      items.push(this.cat())
    }
    return items.length === 1 ? (items[0] as Node) : { t: 'alt', items }
  }

  cat(): Node {
    const items: Node[] = []
    while (this.pos < this.src.length) {
      const c = this.src[this.pos]
      if (c === '|' || c === ')') break
      let atom = this.atom()
      atom = this.quantifiers(atom)
      items.push(atom)
    }
    if (items.length === 0) return { t: 'empty' }
    return items.length === 1 ? (items[0] as Node) : { t: 'cat', items }
  }

  quantifiers(atom: Node): Node {
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
        if (!m) return atom // RE2 treats a non-repeat `{` as a literal
        min = Number(m[1])
        max = m[2] === undefined ? min : m[3] === '' ? -1 : Number(m[3])
        if (min > MAX_REPEAT || max > MAX_REPEAT) this.fail(`repeat count above ${MAX_REPEAT}`, at)
        if (max !== -1 && max < min) this.fail('invalid repeat range', at)
        this.pos += m[0].length
      } else {
        return atom
      }
      if (atom.t === 'bol' || atom.t === 'eol' || atom.t === 'empty')
        this.fail('missing argument to repetition operator', at)
      if (atom.t === 'rep' && this.src[at - 1] !== ')')
        this.fail('invalid nested repetition operator', at)
      if (this.src[this.pos] === '?') this.pos++ // lazy: same language for a full match
      atom = { t: 'rep', item: atom, min, max }
    }
  }

  lit(test: CharTest): Node {
    if (!this.foldCase) return { t: 'lit', test }
    return {
      t: 'lit',
      test: (c) =>
        test(c) || (c >= 65 && c <= 90 && test(c + 32)) || (c >= 97 && c <= 122 && test(c - 32)),
    }
  }

  atom(): Node {
    const c = this.src[this.pos] as string
    const at = this.pos
    switch (c) {
      case '(': {
        this.pos++
        if (this.src[this.pos] === '?') {
          const rest = this.src.slice(this.pos)
          if (rest.startsWith('?:')) this.pos += 2
          else if (/^\?P?<[A-Za-z_][A-Za-z0-9_]*>/.test(rest)) {
            this.pos += (/^\?P?<[A-Za-z_][A-Za-z0-9_]*>/.exec(rest) as RegExpExecArray)[0].length
          } else if (rest.startsWith('?=') || rest.startsWith('?!') || rest.startsWith('?<')) {
            this.fail('lookaround is not supported by RE2', at)
          } else this.fail('unsupported group flags', at)
        }
        const inner = this.alt()
        if (this.src[this.pos] !== ')') this.fail('missing closing )', at)
        this.pos++
        return inner
      }
      case ')':
        this.fail('unexpected )')
        break
      case '*':
      case '+':
      case '?':
        this.fail('missing argument to repetition operator')
        break
      case '[':
        return this.lit(this.cls())
      case '.':
        this.pos++
        return { t: 'lit', test: (ch) => ch !== 10 }
      case '^':
        this.pos++
        return { t: 'bol' }
      case '$':
        this.pos++
        return { t: 'eol' }
      case '\\': {
        const e = this.escape(false)
        if (e === 'bol' || e === 'eol') return { t: e }
        return this.lit(e)
      }
    }
    this.pos++
    const code = c.charCodeAt(0)
    return this.lit((ch) => ch === code)
  }

  /** Parse an escape at `pos` (which is the backslash). */
  escape(inClass: boolean): CharTest | 'bol' | 'eol' {
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
      case 't':
        return (ch) => ch === 9
      case 'n':
        return (ch) => ch === 10
      case 'r':
        return (ch) => ch === 13
      case 'f':
        return (ch) => ch === 12
      case 'v':
        return (ch) => ch === 11
      case 'A':
        if (inClass) this.fail('invalid escape in class', at)
        return 'bol'
      case 'z':
        if (inClass) this.fail('invalid escape in class', at)
        return 'eol'
      case 'x': {
        const m = /^([0-9a-fA-F]{2}|\{[0-9a-fA-F]{1,6}\})/.exec(this.src.slice(this.pos))
        if (!m) this.fail('invalid \\x escape', at)
        this.pos += m[0].length
        const v = Number.parseInt(m[0].replace(/[{}]/g, ''), 16)
        return (ch) => ch === v
      }
    }
    if (/[0-9]/.test(c)) this.fail('backreferences are not supported by RE2', at)
    if (/[A-Za-z]/.test(c)) this.fail(`invalid escape \\${c}`, at)
    const code = c.charCodeAt(0)
    return (ch) => ch === code
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
    const any: CharTest = (ch) => tests.some((t) => t(ch))
    return negate ? (ch) => !any(ch) : any
  }

  classAtom(): number | CharTest {
    const c = this.src[this.pos] as string
    if (c === '\\') {
      const at = this.pos
      const next = this.src[this.pos + 1]
      if (next !== undefined && /[dDwWsS]/.test(next)) {
        return this.escape(true) as CharTest
      }
      const e = this.escape(true)
      if (typeof e !== 'function') this.fail('invalid escape in class', at)
      // Single-character escape: find its code by probing the escaped character.
      const esc = this.src.slice(at + 1, this.pos)
      if (esc === 't') return 9
      if (esc === 'n') return 10
      if (esc === 'r') return 13
      if (esc === 'f') return 12
      if (esc === 'v') return 11
      if (esc.startsWith('x')) return Number.parseInt(esc.slice(1).replace(/[{}]/g, ''), 16)
      return esc.charCodeAt(0)
    }
    this.pos++
    return c.charCodeAt(0)
  }
}

// ---- compile to an NFA program ----
type Inst =
  | { op: 'char'; test: CharTest; next: number }
  | { op: 'split'; a: number; b: number }
  | { op: 'jmp'; next: number }
  | { op: 'bol'; next: number }
  | { op: 'eol'; next: number }
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
      case 'bol':
        return this.emit({ op: 'bol', next })
      case 'eol':
        return this.emit({ op: 'eol', next })
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

/** A compiled pattern. */
export interface Re2Pattern {
  readonly source: string
  /** Does the whole `input` match (RE2 full match, as Envoy's safe_regex)? */
  fullMatch(input: string): boolean
}

/**
 * Compile an RE2-syntax pattern. Throws {@link Re2SyntaxError} for invalid or non-RE2 syntax.
 *
 * @example compileRe2('/v1/.*').fullMatch('/v1/request-landing') // true
 */
export function compileRe2(pattern: string): Re2Pattern {
  const ast = new Parser(pattern).parse()
  const c = new Compiler(pattern)
  const match = c.emit({ op: 'match' })
  const start = c.build(ast, match)
  const prog = c.prog
  return {
    source: pattern,
    fullMatch(input: string): boolean {
      let cur: number[] = []
      let nxt: number[] = []
      const mark = new Int32Array(prog.length).fill(-1)
      let gen = 0
      const add = (list: number[], pc: number, pos: number) => {
        // iterative epsilon closure
        const stack = [pc]
        while (stack.length) {
          const p = stack.pop() as number
          if (mark[p] === gen) continue
          mark[p] = gen
          const inst = prog[p] as Inst
          switch (inst.op) {
            case 'jmp':
              stack.push(inst.next)
              break
            case 'split':
              stack.push(inst.b, inst.a)
              break
            case 'bol':
              if (pos === 0) stack.push(inst.next)
              break
            case 'eol':
              if (pos === input.length) stack.push(inst.next)
              break
            default:
              list.push(p)
          }
        }
      }
      add(cur, start, 0)
      for (let i = 0; i < input.length; i++) {
        const ch = input.charCodeAt(i)
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
