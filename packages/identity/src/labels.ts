import { parsePrefix, RESERVED_IDENTITY_NAMES } from '@membrane/types'
import { IdentityError, IdentityErrorCode } from './errors'

/**
 * Where a label comes from, as Cilium names it. `any` only appears in selectors (it matches a
 * label of any source); `unspec` is what a label without a source gets.
 */
export const LabelSource = {
  K8s: 'k8s',
  Reserved: 'reserved',
  CIDR: 'cidr',
  Container: 'container',
  Any: 'any',
  Unspec: 'unspec',
} as const

export type LabelSource = (typeof LabelSource)[keyof typeof LabelSource]

const SOURCES: ReadonlySet<string> = new Set(Object.values(LabelSource))

const RESERVED_KEYS: ReadonlySet<string> = new Set(RESERVED_IDENTITY_NAMES)

/** One label: `source:key=value`. Values may be empty (`reserved:host`). */
export interface Label {
  readonly source: LabelSource
  readonly key: string
  readonly value: string
}

/** Longest key accepted (a Kubernetes key is at most 253 + 1 + 63 characters). */
const MAX_LABEL_KEY_LENGTH = 317
/** Longest value accepted. */
const MAX_LABEL_VALUE_LENGTH = 1024

// Printable ASCII without space; '=' and ';' are separators and never part of a key, ';' never
// part of a value (it separates labels in the canonical key string).
const KEY_RE = /^[!-:<>-~]+$/
const VALUE_RE = /^[!-:<-~]*$/

function bad(input: unknown, why: string): IdentityError {
  return new IdentityError(
    IdentityErrorCode.INVALID_LABEL,
    `invalid label ${typeof input === 'string' ? JSON.stringify(input) : JSON.stringify(input)}: ${why}`,
    { input },
  )
}

/** Encode a prefix for a `cidr:` label key: IPv6 ':' become '-' (':' separates the source). */
export function cidrLabelKey(cidr: string): string {
  const key = cidr.replaceAll(':', '-')
  return key.startsWith('-') ? `0${key}` : key
}

/** Decode a `cidr:` label key back to prefix text (inverse of {@link cidrLabelKey}). */
export function cidrFromLabelKey(key: string): string {
  return key.includes('-') ? key.replaceAll('-', ':') : key
}

function validate(input: unknown, source: string, key: string, value: string): Label {
  if (!SOURCES.has(source)) {
    throw bad(
      input,
      `unknown source ${JSON.stringify(source)} (expected one of ${[...SOURCES].join(', ')})`,
    )
  }
  if (key.length === 0) throw bad(input, 'the key is empty')
  if (key.length > MAX_LABEL_KEY_LENGTH) {
    throw bad(input, `the key is longer than ${MAX_LABEL_KEY_LENGTH} characters`)
  }
  if (!KEY_RE.test(key)) {
    throw bad(input, "the key may only hold printable ASCII without spaces, '=' or ';'")
  }
  if (value.length > MAX_LABEL_VALUE_LENGTH) {
    throw bad(input, `the value is longer than ${MAX_LABEL_VALUE_LENGTH} characters`)
  }
  if (!VALUE_RE.test(value)) {
    throw bad(input, "the value may only hold printable ASCII without spaces or ';'")
  }
  if (source === LabelSource.Reserved) {
    if (!RESERVED_KEYS.has(key)) {
      throw bad(
        input,
        `unknown reserved label (expected one of ${RESERVED_IDENTITY_NAMES.join(', ')})`,
      )
    }
    if (value !== '') throw bad(input, 'a reserved label has no value')
  }
  if (source === LabelSource.CIDR) {
    if (value !== '') throw bad(input, 'a cidr label has no value')
    let cidr: string
    try {
      cidr = parsePrefix(cidrFromLabelKey(key)).cidr
    } catch (error) {
      throw bad(input, `the key is not a CIDR prefix: ${(error as Error).message}`)
    }
    if (!cidrFromLabelKey(key).includes('/')) throw bad(input, 'a cidr label needs a prefix length')
    key = cidrLabelKey(cidr)
  }
  return Object.freeze({ source: source as LabelSource, key, value })
}

/**
 * Make a validated label from parts.
 *
 * @throws IdentityError `INVALID_LABEL`
 */
export function makeLabel(source: string, key: string, value = ''): Label {
  return validate({ source, key, value }, source, key, value)
}

/**
 * Parse Cilium's label syntax: `source:key=value`, `source:key` (empty value), `key=value`
 * (source `unspec`), `$host` (shorthand for `reserved:host`). A `cidr:` key is canonicalized
 * (`cidr:10.1.0.0/8` becomes `cidr:10.0.0.0/8`).
 *
 * @throws IdentityError `INVALID_LABEL` naming the input and what is wrong.
 * @example parseLabel('k8s:app=web') // { source: 'k8s', key: 'app', value: 'web' }
 */
export function parseLabel(text: string): Label {
  if (typeof text !== 'string') throw bad(text, 'expected a string like "k8s:app=web"')
  let rest = text
  let source: string = LabelSource.Unspec
  if (rest.startsWith('$')) {
    source = LabelSource.Reserved
    rest = rest.slice(1)
  } else {
    const eq = rest.indexOf('=')
    const colon = rest.indexOf(':')
    if (colon !== -1 && (eq === -1 || colon < eq)) {
      source = rest.slice(0, colon)
      rest = rest.slice(colon + 1)
    }
  }
  const eq = rest.indexOf('=')
  const key = eq === -1 ? rest : rest.slice(0, eq)
  const value = eq === -1 ? '' : rest.slice(eq + 1)
  return validate(text, source, key, value)
}

/** Print a label: `source:key=value`, or `source:key` when the value is empty. */
export function formatLabel(label: Label): string {
  return label.value === ''
    ? `${label.source}:${label.key}`
    : `${label.source}:${label.key}=${label.value}`
}

function compareLabels(a: Label, b: Label): number {
  if (a.key !== b.key) return a.key < b.key ? -1 : 1
  if (a.source !== b.source) return a.source < b.source ? -1 : 1
  return 0
}

/** Anything that names a set of labels: a {@link Labels}, or strings / {@link Label}s. */
export type LabelsInput = Labels | Iterable<string | Label>

/**
 * An immutable, validated, sorted set of labels. At most one value per `source:key`. Sorted by
 * key, then source (code-unit order), which is the order of the canonical key string.
 */
export class Labels implements Iterable<Label> {
  /** The empty label set. */
  static readonly EMPTY: Labels = new Labels([])

  readonly #labels: readonly Label[]
  #key: string | undefined
  #strings: readonly string[] | undefined

  private constructor(sorted: readonly Label[]) {
    this.#labels = sorted
  }

  /**
   * Build a label set from strings (parsed with {@link parseLabel}) or labels. Identical
   * duplicates collapse; two values for one `source:key` are an error.
   *
   * @throws IdentityError `INVALID_LABEL`
   * @example Labels.from(['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=default'])
   */
  static from(input: LabelsInput): Labels {
    if (input instanceof Labels) return input
    if (
      typeof input === 'string' ||
      input == null ||
      typeof (input as Iterable<unknown>)[Symbol.iterator] !== 'function'
    ) {
      throw bad(input, 'expected a list of labels like ["k8s:app=web"]')
    }
    const list: Label[] = []
    for (const item of input) {
      list.push(
        typeof item === 'string'
          ? parseLabel(item)
          : validate(item, String(item?.source), String(item?.key), String(item?.value ?? '')),
      )
    }
    list.sort(compareLabels)
    const out: Label[] = []
    for (const label of list) {
      const prev = out[out.length - 1]
      if (prev && prev.key === label.key && prev.source === label.source) {
        if (prev.value === label.value) continue
        throw bad(
          formatLabel(label),
          `two values for ${prev.source}:${prev.key} (${JSON.stringify(prev.value)} and ${JSON.stringify(label.value)})`,
        )
      }
      out.push(label)
    }
    return new Labels(out)
  }

  /**
   * Labels from a Kubernetes-style map (`{ app: 'web' }`), all with one source (default `k8s`).
   */
  static fromRecord(record: Readonly<Record<string, string>>, source: LabelSource = 'k8s'): Labels {
    return Labels.from(Object.entries(record).map(([key, value]) => ({ source, key, value })))
  }

  /**
   * Parse the canonical key string made by {@link Labels.key} (`k8s:a=1;k8s:b=2;`).
   *
   * @throws IdentityError `INVALID_LABEL`
   */
  static fromKey(key: string): Labels {
    if (typeof key !== 'string') throw bad(key, 'expected a canonical labels key string')
    if (key === '') return Labels.EMPTY
    if (!key.endsWith(';')) throw bad(key, "a canonical labels key ends with ';'")
    const parts = key.slice(0, -1).split(';')
    const labels = Labels.from(parts)
    if (labels.key() !== key)
      throw bad(key, `not canonical (expected ${JSON.stringify(labels.key())})`)
    return labels
  }

  /** Number of labels. */
  get size(): number {
    return this.#labels.length
  }

  [Symbol.iterator](): Iterator<Label> {
    return this.#labels[Symbol.iterator]()
  }

  /** The labels as an array (sorted). */
  toArray(): readonly Label[] {
    return this.#labels
  }

  /**
   * The canonical sorted key: every label as `source:key=value;`, e.g.
   * `k8s:app=foo;k8s:io.kubernetes.pod.namespace=default;`. Equal sets give equal keys.
   */
  key(): string {
    if (this.#key === undefined) {
      let s = ''
      for (const l of this.#labels) s += `${l.source}:${l.key}=${l.value};`
      this.#key = s
    }
    return this.#key
  }

  /** Every label printed with {@link formatLabel}, in canonical order. */
  toStrings(): readonly string[] {
    if (this.#strings === undefined) this.#strings = Object.freeze(this.#labels.map(formatLabel))
    return this.#strings
  }

  /** The value of `source:key`, or undefined. */
  get(source: LabelSource, key: string): string | undefined {
    for (const l of this.#labels) if (l.key === key && l.source === source) return l.value
    return undefined
  }

  /**
   * True when this set holds `label`. A label of source `any` matches the same key and value
   * from any source (selector semantics).
   */
  has(label: Label | string): boolean {
    const l = typeof label === 'string' ? parseLabel(label) : label
    for (const m of this.#labels) {
      if (m.key === l.key && m.value === l.value && (l.source === 'any' || m.source === l.source)) {
        return true
      }
    }
    return false
  }

  /** True when every label of `other` is in this set. */
  includes(other: LabelsInput): boolean {
    for (const l of Labels.from(other)) if (!this.has(l)) return false
    return true
  }

  /** The labels of one source. */
  bySource(source: LabelSource): Labels {
    return new Labels(this.#labels.filter((l) => l.source === source))
  }

  /** A set with `more` added (an error when a key would get two values). */
  merge(more: LabelsInput): Labels {
    return Labels.from([...this.#labels, ...Labels.from(more)])
  }

  /** True when both sets hold the same labels. */
  equals(other: Labels): boolean {
    return this.key() === other.key()
  }

  /** The printed labels (JSON shows the array of strings). */
  toJSON(): readonly string[] {
    return this.toStrings()
  }

  toString(): string {
    return this.toStrings().join(',')
  }
}
