import { createHash } from 'node:crypto'
import { invalid } from '../errors'

/** Longest endpoint or namespace name the agent accepts. */
const MAX_NAME_LENGTH = 40
/** The kernel's interface name limit (IFNAMSIZ 16, including the terminating NUL). */
export const MAX_IFNAME_LENGTH = 15
/** Longest instance prefix: it starts every interface and namespace name the agent makes. */
const MAX_PREFIX_LENGTH = 6

const NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/
const PREFIX = /^[a-z][a-z0-9]*$/
const IFNAME = /^[A-Za-z0-9_.-]+$/
const LABEL_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/

/**
 * Check an endpoint or namespace name. Names become parts of network namespace names, pin
 * paths and state keys, so only `[a-z0-9-]` is allowed, starting and ending with an alphanumeric,
 * at most {@link MAX_NAME_LENGTH} characters.
 */
export function validateName(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw invalid(field, `expected a name, got ${JSON.stringify(value)}`)
  }
  if (value.length > MAX_NAME_LENGTH) {
    throw invalid(
      field,
      `"${value}" is ${value.length} characters; at most ${MAX_NAME_LENGTH} are allowed`,
    )
  }
  if (!NAME.test(value)) {
    throw invalid(
      field,
      `"${value}" must be lower-case letters, digits and '-', starting and ending with a letter or digit`,
    )
  }
  return value
}

/** Check the instance prefix (a lower-case letter then letters/digits, at most 6 characters). */
export function validatePrefix(field: string, value: unknown): string {
  if (typeof value !== 'string' || !PREFIX.test(value) || value.length > MAX_PREFIX_LENGTH) {
    throw invalid(
      field,
      `expected 1..${MAX_PREFIX_LENGTH} lower-case letters and digits starting with a letter, got ${JSON.stringify(value)}`,
    )
  }
  return value
}

/** Check an existing interface name given by a user (`--interface`). */
export function validateIfname(field: string, value: unknown): string {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > MAX_IFNAME_LENGTH ||
    !IFNAME.test(value) ||
    value === '.' ||
    value === '..'
  ) {
    throw invalid(
      field,
      `expected an interface name of 1..${MAX_IFNAME_LENGTH} characters [A-Za-z0-9_.-], got ${JSON.stringify(value)}`,
    )
  }
  return value
}

/**
 * Check a Kubernetes-style label set: keys `[prefix/]name` (prefix a DNS subdomain of at most 253
 * characters, name at most 63 characters of `[A-Za-z0-9_.-]`), values empty or a label name.
 */
export function validateLabels(field: string, value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(field, `expected an object of key: value labels, got ${JSON.stringify(value)}`)
  }
  const out: Record<string, string> = {}
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    validateLabelKey(`${field}.${key}`, key)
    if (typeof v !== 'string') {
      throw invalid(`${field}.${key}`, `expected a string value, got ${JSON.stringify(v)}`)
    }
    if (v !== '' && (v.length > 63 || !LABEL_NAME.test(v))) {
      throw invalid(
        `${field}.${key}`,
        `label value ${JSON.stringify(v)} must be at most 63 characters of [A-Za-z0-9_.-], starting and ending with an alphanumeric`,
      )
    }
    out[key] = v
  }
  return out
}

function validateLabelKey(field: string, key: string): void {
  const slash = key.indexOf('/')
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined
  const name = slash >= 0 ? key.slice(slash + 1) : key
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    throw invalid(field, `label key prefix ${JSON.stringify(prefix)} must be a DNS subdomain`)
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    throw invalid(
      field,
      `label key ${JSON.stringify(key)} must be [prefix/]name with a name of 1..63 characters [A-Za-z0-9_.-]`,
    )
  }
}

/**
 * Parse `org=empire,class=deathstar` (the CLI's `--labels`) into a label object. A key without
 * `=` gets the empty value. Duplicate keys are an error.
 */
export function parseLabelList(field: string, text: string): Record<string, string> {
  const out: Record<string, string> = {}
  if (text.trim() === '') return out
  for (const part of text.split(',')) {
    const item = part.trim()
    if (item === '') throw invalid(field, `empty label in ${JSON.stringify(text)}`)
    const eq = item.indexOf('=')
    const key = eq >= 0 ? item.slice(0, eq) : item
    const value = eq >= 0 ? item.slice(eq + 1) : ''
    if (key in out) throw invalid(field, `label ${JSON.stringify(key)} is given twice`)
    out[key] = value
  }
  return validateLabels(field, out)
}

/** The names of the kernel objects of one endpoint, derived only from validated input. */
export interface EndpointNames {
  /** Network namespace, `/run/netns/<netns>`: `<prefix>_<namespace>_<name>`. */
  netns: string
  /** Host side of the veth: prefix + 'l' + hash, always ≤ 15 characters. */
  hostIfname: string
  /** The endpoint's interface inside its namespace. */
  podIfname: string
  /** Temporary name of the peer while it is still on the host. */
  tmpIfname: string
  /** MAC address of the workload's interface: locally administered, derived from the name. */
  mac: string
}

/**
 * Derive kernel object names for endpoint `namespace/name` of agent instance `prefix`. Every
 * name is injective in (prefix, namespace, name): the namespace name joins the three parts with
 * `_`, a character none of them may contain (so `a/b-c` and `a-b/c` get `mb_a_b-c` and
 * `mb_a-b_c`); the interface names are a hash of the exact triple so any valid endpoint fits
 * IFNAMSIZ (a truncated-hash collision is refused at create time by {@link ownerOfNames}).
 *
 * Agents before this scheme named namespaces `<prefix>-<namespace>-<name>`, which two endpoints
 * could share; endpoints created then keep the name recorded in their state (`netns`), so an
 * upgrade finds them.
 */
export function endpointNames(prefix: string, namespace: string, name: string): EndpointNames {
  const hash = createHash('sha256').update(`${prefix}/${namespace}/${name}`).digest('hex')
  const room = MAX_IFNAME_LENGTH - prefix.length - 1
  return {
    netns: `${prefix}_${namespace}_${name}`,
    hostIfname: `${prefix}l${hash.slice(0, room)}`,
    podIfname: 'eth0',
    tmpIfname: `${prefix}t${hash.slice(0, room)}`,
    // 0x02 in the first octet: locally administered, unicast.
    mac: `02:${hash.slice(20, 22)}:${hash.slice(22, 24)}:${hash.slice(24, 26)}:${hash.slice(26, 28)}:${hash.slice(28, 30)}`,
  }
}

/** The kernel object names an endpoint record owns (what {@link ownerOfNames} compares). */
export interface OwnedNames {
  namespace: string
  name: string
  netns?: string | undefined
  hostIfname: string
}

/**
 * The endpoint among `owners` that already owns one of the kernel objects `wanted` would use
 * (its namespace or its host interface, also as the temporary peer name), or undefined. A create
 * refuses to adopt such an object: it would put its address on another workload's interface.
 */
export function ownerOfNames(
  owners: readonly OwnedNames[],
  wanted: { netns?: string | undefined; hostIfname: string; tmpIfname?: string | undefined },
): { owner: OwnedNames; object: string } | undefined {
  const mine = [wanted.netns, wanted.hostIfname, wanted.tmpIfname].filter(
    (n): n is string => n !== undefined,
  )
  for (const owner of owners) {
    for (const theirs of [owner.netns, owner.hostIfname]) {
      if (theirs !== undefined && mine.includes(theirs)) return { owner, object: theirs }
    }
  }
  return undefined
}

/** Names of the agent's own devices (the router's veth pair), never an endpoint's interface. */
export function agentDeviceNames(prefix: string): string[] {
  return [hostDeviceName(prefix), `${prefix}_net`]
}

/** Name of the agent's host device carrying the router address. */
export function hostDeviceName(prefix: string): string {
  return `${prefix}_host`
}

/**
 * True when `name` has the shape of a kernel object {@link endpointNames} makes for instance
 * `prefix`: a namespace `<prefix>_...` (or `<prefix>-...`, the names of older agents), or a host interface `<prefix>l<hex>` / `<prefix>t<hex>`.
 * `membrane agent cleanup` removes such objects even when no endpoint owns them (debris of a
 * crash of an older agent), because the prefix belongs to one agent instance.
 */
export function isEndpointObjectName(
  prefix: string,
  kind: 'netns' | 'link',
  name: string,
): boolean {
  if (kind === 'netns') return name.startsWith(`${prefix}_`) || name.startsWith(`${prefix}-`)
  const room = MAX_IFNAME_LENGTH - prefix.length - 1
  return (
    name.length === prefix.length + 1 + room &&
    name.startsWith(prefix) &&
    (name[prefix.length] === 'l' || name[prefix.length] === 't') &&
    /^[0-9a-f]+$/.test(name.slice(prefix.length + 1))
  )
}
