/**
 * Cilium-style labels (`source:key=value`) and label selectors.
 *
 * A label without a source (`app=web`) has source `unspec`; a selector key without a source
 * (`app`) or with source `any` matches a label of that key from any source.
 */

/** A parsed label. */
export interface Label {
  source: string
  key: string
  value: string
}

/**
 * Parse `source:key=value`. The source is the text before the first `:` when that colon comes
 * before any `=`; `cidr:` labels keep every colon in the key (IPv6).
 */
export function parseLabel(text: string): Label {
  const eq = text.indexOf('=')
  const colon = text.indexOf(':')
  let source = 'unspec'
  let rest = text
  if (colon > 0 && (eq < 0 || colon < eq)) {
    source = text.slice(0, colon)
    rest = text.slice(colon + 1)
  }
  const e = rest.indexOf('=')
  if (e < 0) return { source, key: rest, value: '' }
  return { source, key: rest.slice(0, e), value: rest.slice(e + 1) }
}

/**
 * A label set prepared for selector matching: by `source:key` and by bare key.
 */
export class LabelSet {
  readonly labels: readonly string[]
  /** `source:key` -> value */
  readonly bySourceKey = new Map<string, string>()
  /** key -> values (any source) */
  readonly byKey = new Map<string, string[]>()
  readonly parsed: Label[]

  constructor(labels: Iterable<string>) {
    this.labels = [...labels]
    this.parsed = this.labels.map(parseLabel)
    for (const l of this.parsed) {
      this.bySourceKey.set(`${l.source}:${l.key}`, l.value)
      const list = this.byKey.get(l.key)
      if (list) list.push(l.value)
      else this.byKey.set(l.key, [l.value])
    }
  }

  /** Values of `key` (a `source:key` or a bare/`any:` key). */
  values(key: string): readonly string[] {
    const l = parseSelectorKey(key)
    if (l.source === 'any') return this.byKey.get(l.key) ?? []
    const v = this.bySourceKey.get(`${l.source}:${l.key}`)
    return v === undefined ? [] : [v]
  }

  has(label: string): boolean {
    const l = parseLabel(label)
    return this.bySourceKey.get(`${l.source}:${l.key}`) === l.value
  }
}

/** Parse a selector key: `k8s:app` -> {source k8s, key app}; `app` -> {source any, key app}. */
function parseSelectorKey(key: string): { source: string; key: string } {
  const colon = key.indexOf(':')
  // A key like `io.kubernetes.pod.namespace` has no colon; `k8s:app` does.
  if (colon > 0) return { source: key.slice(0, colon), key: key.slice(colon + 1) }
  return { source: 'any', key }
}

/** One selector requirement, in matchExpressions form. */
export interface Requirement {
  key: string
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'
  values: string[]
}

/**
 * A compiled label selector: the AND of its requirements. An empty selector matches every
 * label set.
 */
export class Selector {
  readonly requirements: readonly Requirement[]
  /** Canonical text; equal selectors have equal keys (used by the selector cache). */
  readonly key: string

  constructor(requirements: Requirement[]) {
    const norm = requirements.map((r) => {
      const k = parseSelectorKey(r.key)
      return {
        key: `${k.source}:${k.key}`,
        operator: r.operator,
        values: [...new Set(r.values)].sort(),
      }
    })
    norm.sort((a, b) =>
      a.key < b.key
        ? -1
        : a.key > b.key
          ? 1
          : a.operator < b.operator
            ? -1
            : a.operator > b.operator
              ? 1
              : 0,
    )
    this.requirements = norm
    this.key = norm.length
      ? norm.map((r) => `${r.key} ${r.operator} (${r.values.join(',')})`).join(' && ')
      : '<all>'
  }

  /** Does the selector have no requirement (selects everything)? */
  get isWildcard(): boolean {
    return this.requirements.length === 0
  }

  /** Does any requirement constrain `key` (bare key, any source or the given source)? */
  hasKey(key: string): boolean {
    const want = parseSelectorKey(key)
    return this.requirements.some((r) => {
      const k = parseSelectorKey(r.key)
      return (
        k.key === want.key &&
        (want.source === 'any' || k.source === 'any' || k.source === want.source)
      )
    })
  }

  /** Does any requirement use a key of this source (e.g. `reserved`)? */
  hasSource(source: string): boolean {
    return this.requirements.some((r) => parseSelectorKey(r.key).source === source)
  }

  /** A selector with one more requirement. */
  with(extra: Requirement): Selector {
    return new Selector([...this.requirements, extra])
  }

  matches(set: LabelSet): boolean {
    for (const r of this.requirements) {
      const vals = set.values(r.key)
      switch (r.operator) {
        case 'Exists':
          if (vals.length === 0) return false
          break
        case 'DoesNotExist':
          if (vals.length !== 0) return false
          break
        case 'In':
          if (!vals.some((v) => r.values.includes(v))) return false
          break
        case 'NotIn':
          if (vals.some((v) => r.values.includes(v))) return false
          break
      }
    }
    return true
  }

  toString(): string {
    return this.key
  }
}
