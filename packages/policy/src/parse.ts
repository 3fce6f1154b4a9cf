/**
 * parsePolicyDocuments(): YAML/JSON text -> validated, compiled PolicyDocuments.
 */
import {
  NAMESPACE_LABELS_PREFIX,
  POD_NAMESPACE_LABEL,
  type Prefix,
  prefixContains,
} from '@membrane/types'
import { parseCidr } from './cidr'
import { PolicyError } from './errors'
import { arr, bool, Ctx, isObj, join, type Obj, obj, str } from './internal/fields'
import { type DnsRule, parseDnsRule } from './l7/dns'
import { parseHttpRule } from './l7/http'
import { parseKafkaRule } from './l7/kafka'
import { type Requirement, Selector } from './labels'
import { loadPolicyObjects, type PolicyLoadLimits } from './load'
import {
  AUTH_TYPES,
  type Direction,
  ENTITIES,
  type Entity,
  type L4Rule,
  type L7Rules,
  type Peer,
  type PeerRule,
  type PolicyDocument,
  type PolicyKind,
  type PolicyRule,
  type PortSpec,
} from './model'
import { ICMPV4_TYPES, ICMPV6_TYPES, isValidPortName } from './ports'

// ---------------------------------------------------------------- selectors

const LABEL_KEY =
  /^([A-Za-z0-9][-A-Za-z0-9_.]*:)?([A-Za-z0-9][-A-Za-z0-9_./]*)?[A-Za-z0-9]$|^[A-Za-z0-9]$/

function parseSelector(ctx: Ctx, v: unknown, path: string): Selector {
  const o = obj(ctx, v ?? {}, path, ['matchLabels', 'matchExpressions'])
  const reqs: Requirement[] = []
  if (o.matchLabels !== undefined && o.matchLabels !== null) {
    const ml = obj(ctx, o.matchLabels, join(path, 'matchLabels'), Object.keys(o.matchLabels as Obj))
    for (const [k, val] of Object.entries(ml)) {
      const p = join(join(path, 'matchLabels'), k)
      if (!LABEL_KEY.test(k))
        ctx.fail('INVALID_SELECTOR', p, 'invalid label key', 'a label key like app or k8s:app', k)
      // Kubernetes label values are strings: `app: 1` or `ok: true` in YAML is a number or a
      // boolean, which the API server refuses; quote it (`app: "1"`).
      const value = val === null ? '' : val
      if (typeof value !== 'string')
        ctx.fail(
          'INVALID_TYPE',
          p,
          `label ${k} has a ${typeof value} value`,
          'a string label value (quote it in YAML)',
          val,
        )
      if (
        value.length > 63 ||
        (value !== '' && !/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(value))
      )
        ctx.fail(
          'INVALID_SELECTOR',
          p,
          'invalid label value',
          'at most 63 characters [A-Za-z0-9-_.], starting and ending alphanumeric',
          value,
        )
      reqs.push({ key: k, operator: 'In', values: [value] })
    }
  }
  const exprs = arr(ctx, o.matchExpressions, join(path, 'matchExpressions')) ?? []
  exprs.forEach((e, i) => {
    const p = join(join(path, 'matchExpressions'), i)
    const eo = obj(ctx, e, p, ['key', 'operator', 'values'])
    const key = str(ctx, eo.key, join(p, 'key'))
    if (!key) ctx.fail('MISSING_FIELD', join(p, 'key'), 'missing key', 'a label key')
    if (!LABEL_KEY.test(key))
      ctx.fail(
        'INVALID_SELECTOR',
        join(p, 'key'),
        'invalid label key',
        'a label key like app or k8s:app',
        key,
      )
    const op = str(ctx, eo.operator, join(p, 'operator'))
    if (op !== 'In' && op !== 'NotIn' && op !== 'Exists' && op !== 'DoesNotExist')
      ctx.fail(
        'INVALID_SELECTOR',
        join(p, 'operator'),
        'invalid operator',
        'In, NotIn, Exists or DoesNotExist',
        eo.operator,
      )
    const values = (arr(ctx, eo.values, join(p, 'values')) ?? []).map((x, j) => {
      const s = typeof x === 'number' || typeof x === 'boolean' ? String(x) : x
      if (typeof s !== 'string')
        ctx.fail('INVALID_TYPE', join(join(p, 'values'), j), 'wrong type', 'a string', x)
      return s
    })
    if ((op === 'In' || op === 'NotIn') && values.length === 0)
      ctx.fail(
        'INVALID_SELECTOR',
        join(p, 'values'),
        `operator ${op} needs values`,
        'a non-empty list',
      )
    if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0)
      ctx.fail(
        'INVALID_SELECTOR',
        join(p, 'values'),
        `operator ${op} takes no values`,
        'no values',
        values,
      )
    reqs.push({ key, operator: op, values })
  })
  return new Selector(reqs)
}

const nsReq = (ns: string): Requirement => ({
  key: `k8s:${POD_NAMESPACE_LABEL}`,
  operator: 'In',
  values: [ns],
})

/**
 * Scope a Cilium peer selector (fromEndpoints/toEndpoints) as Cilium does:
 * - a selector on `reserved:` labels, or one naming the pod namespace, is kept as is;
 * - in a CiliumNetworkPolicy, it gets the policy's namespace, unless it selects namespace
 *   labels (`io.cilium.k8s.namespace.labels.*`), which is how it reaches other namespaces;
 * - in a CiliumClusterwideNetworkPolicy, it gets "has a pod namespace" (so `{}` means every
 *   pod, not every identity), unless the rule's subject selects initializing endpoints.
 */
function scopePeerSelector(
  sel: Selector,
  namespace: string | undefined,
  subjectMatchesInit: boolean,
): Selector {
  if (sel.hasSource('reserved') || sel.hasKey(`k8s:${POD_NAMESPACE_LABEL}`)) return sel
  if (namespace === undefined) {
    if (subjectMatchesInit) return sel
    return sel.with({ key: `k8s:${POD_NAMESPACE_LABEL}`, operator: 'Exists', values: [] })
  }
  const selectsNamespaceLabels = sel.requirements.some((r) => {
    const k = r.key.slice(r.key.indexOf(':') + 1)
    const src = r.key.slice(0, r.key.indexOf(':'))
    return (src === 'k8s' || src === 'any') && k.startsWith(NAMESPACE_LABELS_PREFIX)
  })
  if (selectsNamespaceLabels) return sel
  return sel.with(nsReq(namespace))
}

// ---------------------------------------------------------------- CIDRs

function parseCidrText(ctx: Ctx, v: unknown, path: string): Prefix {
  const s = str(ctx, v, path)
  const c = s === undefined ? undefined : parseCidr(s)
  if (!c) ctx.fail('INVALID_CIDR', path, 'invalid CIDR', 'an IPv4/IPv6 prefix like 10.0.0.0/8', v)
  return c
}

function parseCidrSet(
  ctx: Ctx,
  v: unknown,
  path: string,
  matchPodIps: boolean,
  ipBlock = false,
): Peer {
  const o = ipBlock
    ? obj(ctx, v, path, ['cidr', 'except'])
    : obj(
        ctx,
        v,
        path,
        ['cidr', 'except', 'cidrGroupRef', 'cidrGroupSelector'],
        ['cidrGroupSelector'],
      )
  if (!ipBlock && o.cidrGroupRef != null) {
    if (o.cidr != null)
      ctx.fail(
        'INVALID_COMBINATION',
        path,
        'cidr and cidrGroupRef are mutually exclusive',
        'either cidr or cidrGroupRef',
      )
    const name = str(ctx, o.cidrGroupRef, join(path, 'cidrGroupRef'))
    if (!name || !DNS1123.test(name))
      ctx.fail(
        'INVALID_VALUE',
        join(path, 'cidrGroupRef'),
        'invalid CiliumCIDRGroup name',
        'a DNS-1123 name',
        o.cidrGroupRef,
      )
    const except = (arr(ctx, o.except, join(path, 'except')) ?? []).map((e, i) =>
      parseCidrText(ctx, e, join(join(path, 'except'), i)),
    )
    return { kind: 'cidrGroup', name, except }
  }
  if (o.cidr === undefined)
    ctx.fail('MISSING_FIELD', join(path, 'cidr'), 'missing cidr', 'a CIDR or a cidrGroupRef')
  if (typeof o.cidr === 'string' && !o.cidr.includes('/'))
    ctx.fail(
      'INVALID_CIDR',
      join(path, 'cidr'),
      'a CIDR set needs prefix notation',
      'address/length, e.g. 10.0.0.0/8',
      o.cidr,
    )
  const cidr = parseCidrText(ctx, o.cidr, join(path, 'cidr'))
  const except = (arr(ctx, o.except, join(path, 'except')) ?? []).map((e, i) => {
    const p = join(join(path, 'except'), i)
    const c = parseCidrText(ctx, e, p)
    // As Cilium: the except prefix must start inside the CIDR (same family).
    const start = parseCidr(`${c.cidr.slice(0, c.cidr.indexOf('/'))}/${c.family === 4 ? 32 : 128}`)
    if (!start || !prefixContains(cidr, start))
      ctx.fail(
        'INVALID_CIDR',
        p,
        `except ${c.cidr} is not inside ${cidr.cidr}`,
        `a prefix inside ${cidr.cidr}`,
        e,
      )
    return c
  })
  return { kind: 'cidr', cidr, except, matchPodIps }
}

// ---------------------------------------------------------------- ports and L7

interface PortCtx {
  direction: Direction
  deny: boolean
  /** NetworkPolicy: protocol defaults to TCP and there are no L7 rules. */
  k8s: boolean
}

function parsePortNumber(ctx: Ctx, v: unknown, path: string): { port: number; name?: string } {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0 || v > 65535)
      ctx.fail('INVALID_PORT', path, 'invalid port', 'a port number 0..65535 or a port name', v)
    return { port: v }
  }
  if (typeof v !== 'string')
    ctx.fail('INVALID_PORT', path, 'invalid port', 'a port number 0..65535 or a port name', v)
  if (/^\d+$/.test(v)) {
    const n = Number(v)
    if (n > 65535)
      ctx.fail('INVALID_PORT', path, 'invalid port', 'a port number 0..65535 or a port name', v)
    return { port: n }
  }
  const name = v.toLowerCase()
  if (!isValidPortName(name))
    ctx.fail(
      'INVALID_PORT',
      path,
      'invalid port name',
      'a port number 0..65535 or an IANA service name (1-15 of [a-z0-9-], with a letter)',
      v,
    )
  return { port: 0, name }
}

function parsePortProtocols(ctx: Ctx, v: unknown, path: string, pc: PortCtx): PortSpec {
  const o = obj(ctx, v, path, ['port', 'endPort', 'protocol'])
  let protocol: PortSpec['protocol'] = pc.k8s ? 'TCP' : 'ANY'
  if (o.protocol !== undefined && o.protocol !== null) {
    const p = str(ctx, o.protocol, join(path, 'protocol'))
    const allowed = pc.k8s ? ['TCP', 'UDP', 'SCTP'] : ['TCP', 'UDP', 'SCTP', 'ANY']
    // Cilium fixes up the capitalisation of the protocol name; Kubernetes does not.
    const norm = pc.k8s || p === undefined ? p : p === '' ? 'ANY' : p.toUpperCase()
    if (norm === undefined || !allowed.includes(norm))
      ctx.fail(
        'INVALID_PORT',
        join(path, 'protocol'),
        'invalid protocol',
        allowed.join(', '),
        o.protocol,
      )
    protocol = norm as PortSpec['protocol']
  }
  let port = 0
  let name: string | undefined
  if (o.port !== undefined && o.port !== null) {
    const r = parsePortNumber(ctx, o.port, join(path, 'port'))
    port = r.port
    name = r.name
  } else if (!pc.k8s) {
    ctx.fail(
      'MISSING_FIELD',
      join(path, 'port'),
      'missing port',
      'a port number or name ("0" for every port)',
    )
  }
  const spec: PortSpec = { protocol, port }
  if (name !== undefined) spec.name = name
  if (o.endPort !== undefined && o.endPort !== null) {
    const ep = o.endPort
    const epPath = join(path, 'endPort')
    if (typeof ep !== 'number' || !Number.isInteger(ep) || ep < 1 || ep > 65535)
      ctx.fail('INVALID_PORT', epPath, 'invalid endPort', 'an integer 1..65535', ep)
    if (name !== undefined || port === 0)
      ctx.fail(
        'INVALID_PORT',
        epPath,
        'endPort needs a numeric start port',
        'a numeric port greater than 0 in "port"',
        o.port,
      )
    if (ep < port)
      ctx.fail(
        'INVALID_PORT',
        epPath,
        `endPort ${ep} is below port ${port}`,
        `an endPort >= ${port}`,
        ep,
      )
    if (ep > port) spec.endPort = ep
  }
  return spec
}

function parseL7(
  ctx: Ctx,
  v: unknown,
  path: string,
  pc: PortCtx,
  ports: PortSpec[],
): L7Rules | undefined {
  if (v === undefined || v === null) return undefined
  const o = obj(ctx, v, path, ['http', 'kafka', 'dns'], ['l7proto', 'l7'])
  const present = (['http', 'kafka', 'dns'] as const).filter((k) => {
    const a = arr(ctx, o[k], join(path, k))
    return a !== undefined
  })
  if (present.length === 0) return undefined
  if (present.length > 1)
    ctx.fail(
      'INVALID_L7',
      path,
      `only one L7 parser per port rule, got ${present.join(' and ')}`,
      'one of http, kafka, dns',
    )
  const parser = present[0] as 'http' | 'kafka' | 'dns'
  if (parser === 'dns') {
    if (pc.direction !== 'egress')
      ctx.fail(
        'INVALID_L7',
        join(path, 'dns'),
        'DNS rules are only allowed on egress',
        'dns rules under egress[].toPorts[]',
      )
  } else {
    ports.forEach((p, i) => {
      if (p.protocol !== 'TCP')
        ctx.fail(
          'INVALID_L7',
          join(path.replace(/\.rules$/, ''), `ports[${i}].protocol`),
          `L7 rules can only apply to TCP (not ${p.protocol}) except for DNS rules`,
          'protocol TCP',
          p.protocol,
        )
    })
  }
  ports.forEach((p, i) => {
    if (p.port === 0 && p.name === undefined)
      ctx.fail(
        'INVALID_L7',
        join(path.replace(/\.rules$/, ''), `ports[${i}].port`),
        `${parser} rules need an explicit port`,
        'a port other than 0',
        '0',
      )
    if (p.endPort !== undefined)
      ctx.fail(
        'INVALID_L7',
        join(path.replace(/\.rules$/, ''), `ports[${i}].endPort`),
        'L7 rules cannot apply to a port range',
        'no endPort with L7 rules',
        p.endPort,
      )
  })
  const list = arr(ctx, o[parser], join(path, parser)) as unknown[]
  if (parser === 'http')
    return { parser, http: list.map((r, i) => parseHttpRule(ctx, r, join(join(path, 'http'), i))) }
  if (parser === 'kafka')
    return {
      parser,
      kafka: list.map((r, i) => parseKafkaRule(ctx, r, join(join(path, 'kafka'), i))),
    }
  const dns: DnsRule[] = list.map((r, i) => {
    const p = join(join(path, 'dns'), i)
    return parseDnsRule(ctx, r, p)
  })
  return { parser, dns }
}

function parseToPorts(ctx: Ctx, v: unknown, path: string, pc: PortCtx): L4Rule[] | undefined {
  const list = arr(ctx, v, path)
  if (!list) return undefined
  const out = list.map((pr, i) => {
    const p = join(path, i)
    const known = pc.deny ? ['ports'] : ['ports', 'rules']
    const unsupported = pc.deny
      ? []
      : ['terminatingTLS', 'originatingTLS', 'serverNames', 'listener']
    const o = obj(
      ctx,
      pr,
      p,
      [...known, ...unsupported].filter((k) => !unsupported.includes(k)),
      unsupported,
    )
    const plist = arr(ctx, o.ports, join(p, 'ports')) ?? []
    if (plist.length > 40)
      ctx.fail(
        'INVALID_PORT',
        join(p, 'ports'),
        'too many ports',
        'at most 40 ports per rule',
        plist.length,
      )
    const ports = plist.map((x, j) => parsePortProtocols(ctx, x, join(join(p, 'ports'), j), pc))
    const rule: L4Rule = { ports: ports.length ? ports : [{ protocol: 'ANY', port: 0 }], path: p }
    if (!pc.deny) {
      const l7 = parseL7(ctx, o.rules, join(p, 'rules'), pc, rule.ports)
      if (l7) rule.l7 = l7
    }
    return rule
  })
  // Different L7 parsers on the same port inside one rule cannot share one redirect.
  const seen = new Map<string, string>()
  for (const r of out) {
    if (!r.l7) continue
    for (const p of r.ports) {
      const k = `${p.protocol}/${p.name ?? p.port}`
      const prev = seen.get(k)
      if (prev && prev !== r.l7.parser)
        ctx.fail(
          'L7_PARSER_CONFLICT',
          r.path,
          `port ${k} has both ${prev} and ${r.l7.parser} rules`,
          'one L7 parser per port',
        )
      seen.set(k, r.l7.parser)
    }
  }
  return out
}

function parseIcmps(ctx: Ctx, v: unknown, path: string): L4Rule[] | undefined {
  const list = arr(ctx, v, path)
  if (!list) return undefined
  return list.map((ir, i) => {
    const p = join(path, i)
    const o = obj(ctx, ir, p, ['fields'])
    const fields = arr(ctx, o.fields, join(p, 'fields')) ?? []
    if (fields.length > 40)
      ctx.fail(
        'INVALID_VALUE',
        join(p, 'fields'),
        'too many ICMP fields',
        'at most 40',
        fields.length,
      )
    const ports: PortSpec[] = fields.map((f, j) => {
      const fp = join(join(p, 'fields'), j)
      const fo = obj(ctx, f, fp, ['family', 'type'])
      const family = str(ctx, fo.family, join(fp, 'family')) ?? 'IPv4'
      if (family !== 'IPv4' && family !== 'IPv6')
        ctx.fail(
          'INVALID_VALUE',
          join(fp, 'family'),
          'invalid ICMP family',
          'IPv4 or IPv6',
          fo.family,
        )
      const table = family === 'IPv4' ? ICMPV4_TYPES : ICMPV6_TYPES
      let type: number | undefined
      if (typeof fo.type === 'number') type = fo.type
      else if (typeof fo.type === 'string')
        type = /^\d+$/.test(fo.type) ? Number(fo.type) : table[fo.type]
      if (type === undefined || !Number.isInteger(type) || type < 0 || type > 255)
        ctx.fail(
          'INVALID_VALUE',
          join(fp, 'type'),
          `invalid ${family} ICMP type`,
          `0..255 or a name such as ${family === 'IPv4' ? 'EchoRequest' : 'EchoRequest (128)'}`,
          fo.type,
        )
      return { protocol: family === 'IPv4' ? 'ICMP' : 'ICMPv6', port: type }
    })
    return { ports, path: p }
  })
}

// ---------------------------------------------------------------- Cilium rules

const L3_INGRESS = [
  'fromEndpoints',
  'fromCIDR',
  'fromCIDRSet',
  'fromEntities',
  'fromNodes',
] as const
const L3_EGRESS = [
  'toEndpoints',
  'toCIDR',
  'toCIDRSet',
  'toEntities',
  'toServices',
  'toFQDNs',
  'toNodes',
] as const

interface RuleCtx {
  ref: string
  namespace: string | undefined
  /** The rule's subject selects `reserved:init` (Cilium then leaves CCNP peers unscoped). */
  subjectMatchesInit: boolean
}

function parseEntities(ctx: Ctx, v: unknown, path: string): Peer[] {
  const list = arr(ctx, v, path) ?? []
  return list.map((e, i) => {
    const p = join(path, i)
    if (typeof e !== 'string' || !(ENTITIES as readonly string[]).includes(e))
      ctx.fail('INVALID_VALUE', p, 'unknown entity', ENTITIES.join(', '), e)
    const ent = e as Entity
    return ent === 'all' ? { kind: 'wildcard' } : { kind: 'entity', entity: ent }
  })
}

function parseCiliumPeerRule(
  ctx: Ctx,
  v: unknown,
  path: string,
  direction: Direction,
  deny: boolean,
  rc: RuleCtx,
): PeerRule {
  const l3 = direction === 'ingress' ? L3_INGRESS : L3_EGRESS
  const knownL3: string[] =
    deny && direction === 'egress' ? l3.filter((k) => k !== 'toFQDNs') : [...l3]
  const unsupported =
    direction === 'ingress' ? ['fromRequires', 'fromGroups'] : ['toRequires', 'toGroups']
  const known = [
    ...knownL3,
    'toPorts',
    'icmps',
    ...(deny ? [] : ['authentication']),
    ...unsupported,
  ]
  const o = obj(ctx, v, path, known, unsupported)
  const present = knownL3.filter((k) => {
    const a = arr(ctx, o[k], join(path, k))
    return a !== undefined && a.length > 0
  })
  if (present.length > 1)
    ctx.fail(
      'INVALID_COMBINATION',
      path,
      `combining ${present[0]} and ${present[1]} is not supported`,
      'one kind of L3 selector per rule',
    )
  const peers: Peer[] = []
  for (const k of present) {
    const p = join(path, k)
    const list = o[k] as unknown[]
    switch (k) {
      case 'fromEndpoints':
      case 'toEndpoints':
        list.forEach((s, i) => {
          const sel = parseSelector(ctx, s, join(p, i))
          peers.push({
            kind: 'endpoints',
            selector: scopePeerSelector(sel, rc.namespace, rc.subjectMatchesInit),
          })
        })
        break
      case 'fromCIDR':
      case 'toCIDR':
        list.forEach((c, i) => {
          peers.push({
            kind: 'cidr',
            cidr: parseCidrText(ctx, c, join(p, i)),
            except: [],
            matchPodIps: false,
          })
        })
        break
      case 'fromCIDRSet':
      case 'toCIDRSet':
        list.forEach((c, i) => {
          peers.push(parseCidrSet(ctx, c, join(p, i), false))
        })
        break
      case 'fromNodes':
      case 'toNodes':
        list.forEach((n, i) => {
          peers.push({ kind: 'nodes', selector: parseSelector(ctx, n, join(p, i)) })
        })
        break
      case 'fromEntities':
      case 'toEntities':
        peers.push(...parseEntities(ctx, list, p))
        break
      case 'toFQDNs':
        list.forEach((f, i) => {
          const s = parseDnsRule(ctx, f, join(p, i))
          peers.push(
            s.matchName !== undefined
              ? { kind: 'fqdn', matchName: s.matchName }
              : { kind: 'fqdn', matchPattern: s.matchPattern as string },
          )
        })
        break
      case 'toServices':
        list.forEach((s, i) => {
          const sp = join(p, i)
          const so = obj(ctx, s, sp, ['k8sService', 'k8sServiceSelector'])
          if ((so.k8sService == null) === (so.k8sServiceSelector == null))
            ctx.fail(
              'INVALID_COMBINATION',
              sp,
              'exactly one of k8sService and k8sServiceSelector',
              'k8sService or k8sServiceSelector',
            )
          if (so.k8sService != null) {
            const ko = obj(ctx, so.k8sService, join(sp, 'k8sService'), ['serviceName', 'namespace'])
            const name = str(ctx, ko.serviceName, join(join(sp, 'k8sService'), 'serviceName'))
            if (!name)
              ctx.fail(
                'MISSING_FIELD',
                join(join(sp, 'k8sService'), 'serviceName'),
                'missing serviceName',
                'a service name',
              )
            const ns =
              str(ctx, ko.namespace, join(join(sp, 'k8sService'), 'namespace')) ??
              rc.namespace ??
              'default'
            peers.push({ kind: 'service', namespace: ns, name })
          } else {
            const ko = obj(ctx, so.k8sServiceSelector, join(sp, 'k8sServiceSelector'), [
              'selector',
              'namespace',
            ])
            const sel = parseSelector(
              ctx,
              ko.selector,
              join(join(sp, 'k8sServiceSelector'), 'selector'),
            )
            const ns =
              str(ctx, ko.namespace, join(join(sp, 'k8sServiceSelector'), 'namespace')) ??
              rc.namespace ??
              'default'
            peers.push({ kind: 'service', namespace: ns, selector: sel })
          }
        })
        break
    }
  }
  const pc: PortCtx = { direction, deny, k8s: false }
  const toPorts = parseToPorts(ctx, o.toPorts, join(path, 'toPorts'), pc)
  const icmps = parseIcmps(ctx, o.icmps, join(path, 'icmps'))
  if (present.includes('toServices') && toPorts?.length)
    ctx.fail(
      'INVALID_COMBINATION',
      join(path, 'toPorts'),
      'combining toServices and toPorts is not supported',
      'toServices without toPorts',
    )
  if (toPorts?.length && icmps?.length)
    ctx.fail(
      'INVALID_COMBINATION',
      join(path, 'icmps'),
      'the icmps block may only be present without toPorts',
      'either toPorts or icmps',
    )
  let l4: L4Rule[] | undefined
  if (toPorts?.length) l4 = toPorts
  else if (icmps?.length) l4 = icmps
  // An L4-only rule applies to every peer; an empty rule `{}` selects nothing.
  if (present.length === 0 && l4) peers.push({ kind: 'wildcard' })
  let authType = 0
  if (o.authentication !== undefined && o.authentication !== null) {
    const ap = join(path, 'authentication')
    const ao = obj(ctx, o.authentication, ap, ['mode'])
    const mode = str(ctx, ao.mode, join(ap, 'mode'))
    if (mode === undefined || !(mode in AUTH_TYPES))
      ctx.fail(
        'INVALID_VALUE',
        join(ap, 'mode'),
        'invalid authentication mode',
        Object.keys(AUTH_TYPES).join(', '),
        ao.mode,
      )
    authType = AUTH_TYPES[mode as keyof typeof AUTH_TYPES]
  }
  const rule: PeerRule = { id: `${rc.ref}:${path}`, path, direction, deny, peers, authType }
  if (l4) rule.l4 = l4
  return rule
}

function parseCiliumSpec(
  ctx: Ctx,
  v: unknown,
  path: string,
  kind: PolicyKind,
  ref: string,
  name: string,
  namespace: string | undefined,
): PolicyRule {
  const o = obj(ctx, v, path, [
    'endpointSelector',
    'nodeSelector',
    'ingress',
    'ingressDeny',
    'egress',
    'egressDeny',
    'labels',
    'description',
    'enableDefaultDeny',
    'log',
  ])
  const ccnp = kind === 'CiliumClusterwideNetworkPolicy'
  const hasEp = o.endpointSelector !== undefined && o.endpointSelector !== null
  const hasNode = o.nodeSelector !== undefined && o.nodeSelector !== null
  if (hasEp === hasNode)
    ctx.fail(
      hasEp ? 'INVALID_COMBINATION' : 'MISSING_FIELD',
      path,
      'a rule needs exactly one of endpointSelector and nodeSelector',
      'endpointSelector or nodeSelector',
    )
  if (hasNode && !ccnp)
    ctx.fail(
      'INVALID_VALUE',
      join(path, 'nodeSelector'),
      'nodeSelector is only allowed in CiliumClusterwideNetworkPolicy',
      'endpointSelector',
    )
  let subjectSel = parseSelector(
    ctx,
    hasEp ? o.endpointSelector : o.nodeSelector,
    join(path, hasEp ? 'endpointSelector' : 'nodeSelector'),
  )
  const subjectMatchesInit = hasEp && subjectSel.hasKey('reserved:init')
  if (hasEp && namespace !== undefined) {
    // As Cilium: the endpointSelector always applies in the policy's namespace; a
    // `k8s:io.kubernetes.pod.namespace` match of the user is replaced, not combined.
    subjectSel = new Selector([
      ...subjectSel.requirements.filter((r) => r.key !== `k8s:${POD_NAMESPACE_LABEL}`),
      nsReq(namespace),
    ])
  }
  const rc: RuleCtx = { ref, namespace, subjectMatchesInit }
  const rules = (key: 'ingress' | 'ingressDeny' | 'egress' | 'egressDeny') => {
    const list = arr(ctx, o[key], join(path, key))
    const direction: Direction = key.startsWith('ingress') ? 'ingress' : 'egress'
    const deny = key.endsWith('Deny')
    return (list ?? []).map((r, i) =>
      parseCiliumPeerRule(ctx, r, join(join(path, key), i), direction, deny, rc),
    )
  }
  const ingress = [...rules('ingress'), ...rules('ingressDeny')]
  const egress = [...rules('egress'), ...rules('egressDeny')]
  if (hasNode) {
    for (const r of [...ingress, ...egress]) {
      if (r.l4?.some((l) => l.l7))
        ctx.fail(
          'INVALID_L7',
          r.path,
          'L7 rules are not allowed in host (nodeSelector) policies',
          'no rules under toPorts',
        )
    }
  }
  const labels: string[] = []
  const ruleLabels = arr(ctx, o.labels, join(path, 'labels')) ?? []
  ruleLabels.forEach((l, i) => {
    const lp = join(join(path, 'labels'), i)
    const lo = obj(ctx, l, lp, ['key', 'value', 'source'])
    const key = str(ctx, lo.key, join(lp, 'key'))
    if (!key) ctx.fail('MISSING_FIELD', join(lp, 'key'), 'missing label key', 'a key')
    const value = str(ctx, lo.value, join(lp, 'value')) ?? ''
    const source = str(ctx, lo.source, join(lp, 'source')) ?? 'unspec'
    labels.push(value ? `${source}:${key}=${value}` : `${source}:${key}`)
  })
  labels.push(
    `k8s:io.cilium.k8s.policy.derived-from=${kind}`,
    `k8s:io.cilium.k8s.policy.name=${name}`,
  )
  if (namespace !== undefined) labels.push(`k8s:io.cilium.k8s.policy.namespace=${namespace}`)
  const dd =
    o.enableDefaultDeny === undefined || o.enableDefaultDeny === null
      ? {}
      : obj(ctx, o.enableDefaultDeny, join(path, 'enableDefaultDeny'), ['ingress', 'egress'])
  const ddIn = bool(ctx, dd.ingress, join(path, 'enableDefaultDeny.ingress'))
  const ddEg = bool(ctx, dd.egress, join(path, 'enableDefaultDeny.egress'))
  const description = str(ctx, o.description, join(path, 'description'))
  const rule: PolicyRule = {
    ref,
    kind,
    name,
    path,
    subject: { kind: hasNode ? 'nodes' : 'endpoints', selector: subjectSel },
    labels,
    ingress,
    egress,
    defaultDeny: {
      ingress: ingress.length > 0 && ddIn !== false,
      egress: egress.length > 0 && ddEg !== false,
    },
  }
  if (namespace !== undefined) rule.namespace = namespace
  if (description !== undefined) rule.description = description
  return rule
}

// ---------------------------------------------------------------- Kubernetes NetworkPolicy

/** NetworkPolicy selectors match Kubernetes labels only (source `k8s`), as in Cilium. */
function k8sSourced(sel: Selector): Selector {
  return new Selector(sel.requirements.map((r) => ({ ...r, key: r.key.replace(/^any:/, 'k8s:') })))
}

function parseK8sPeer(ctx: Ctx, v: unknown, path: string, namespace: string): Peer {
  const o = obj(ctx, v, path, ['podSelector', 'namespaceSelector', 'ipBlock'])
  const hasPod = o.podSelector != null
  const hasNs = o.namespaceSelector != null
  const hasIp = o.ipBlock != null
  if (hasIp && (hasPod || hasNs))
    ctx.fail(
      'INVALID_COMBINATION',
      path,
      'ipBlock cannot be combined with podSelector or namespaceSelector',
      'ipBlock alone',
    )
  if (!hasIp && !hasPod && !hasNs)
    ctx.fail(
      'MISSING_FIELD',
      path,
      'a peer needs podSelector, namespaceSelector or ipBlock',
      'at least one of them',
    )
  if (hasIp) return parseCidrSet(ctx, o.ipBlock, join(path, 'ipBlock'), true, true)
  let sel = hasPod
    ? k8sSourced(parseSelector(ctx, o.podSelector, join(path, 'podSelector')))
    : new Selector([])
  if (hasNs) {
    const nsSel = parseSelector(ctx, o.namespaceSelector, join(path, 'namespaceSelector'))
    const reqs: Requirement[] = [...sel.requirements]
    for (const r of nsSel.requirements) {
      const key = r.key.replace(/^any:/, '')
      reqs.push({ ...r, key: `k8s:${NAMESPACE_LABELS_PREFIX}${key}` })
    }
    // Pods only: anything in some namespace.
    reqs.push({ key: `k8s:${POD_NAMESPACE_LABEL}`, operator: 'Exists', values: [] })
    sel = new Selector(reqs)
  } else {
    sel = sel.with(nsReq(namespace))
  }
  return { kind: 'endpoints', selector: sel }
}

function parseNetworkPolicy(
  ctx: Ctx,
  spec: unknown,
  ref: string,
  name: string,
  namespace: string,
): PolicyRule {
  const path = 'spec'
  const o = obj(ctx, spec, path, ['podSelector', 'policyTypes', 'ingress', 'egress'])
  if (o.podSelector === undefined)
    ctx.fail(
      'MISSING_FIELD',
      join(path, 'podSelector'),
      'missing podSelector',
      'a label selector ({} for every pod)',
    )
  const subject = k8sSourced(parseSelector(ctx, o.podSelector, join(path, 'podSelector'))).with(
    nsReq(namespace),
  )
  const ingressList = arr(ctx, o.ingress, join(path, 'ingress'))
  const egressList = arr(ctx, o.egress, join(path, 'egress'))
  let types: string[]
  const pt = arr(ctx, o.policyTypes, join(path, 'policyTypes'))
  // Kubernetes defaults an empty policyTypes like a missing one.
  if (pt?.length) {
    types = pt.map((t, i) => {
      if (t !== 'Ingress' && t !== 'Egress')
        ctx.fail(
          'INVALID_VALUE',
          join(join(path, 'policyTypes'), i),
          'invalid policy type',
          'Ingress or Egress',
          t,
        )
      return t
    })
  } else {
    types = ['Ingress']
    if (egressList) types.push('Egress')
  }
  const rc: RuleCtx = { ref, namespace, subjectMatchesInit: false }
  const mk = (direction: Direction, list: unknown[] | undefined): PeerRule[] => {
    if (!types.includes(direction === 'ingress' ? 'Ingress' : 'Egress')) return []
    const peerKey = direction === 'ingress' ? 'from' : 'to'
    return (list ?? []).map((r, i) => {
      const p = join(join(path, direction), i)
      const ro = obj(ctx, r, p, [peerKey, 'ports'])
      const peerList = arr(ctx, ro[peerKey], join(p, peerKey))
      const peers: Peer[] =
        peerList && peerList.length > 0
          ? peerList.map((x, j) => parseK8sPeer(ctx, x, join(join(p, peerKey), j), namespace))
          : [{ kind: 'wildcard' }]
      const portList = arr(ctx, ro.ports, join(p, 'ports'))
      const rule: PeerRule = {
        id: `${rc.ref}:${p}`,
        path: p,
        direction,
        deny: false,
        peers,
        authType: 0,
      }
      if (portList && portList.length > 0) {
        rule.l4 = [
          {
            path: join(p, 'ports'),
            ports: portList.map((x, j) =>
              parsePortProtocols(ctx, x, join(join(p, 'ports'), j), {
                direction,
                deny: false,
                k8s: true,
              }),
            ),
          },
        ]
      }
      return rule
    })
  }
  return {
    ref,
    kind: 'NetworkPolicy',
    namespace,
    name,
    path,
    subject: { kind: 'endpoints', selector: subject },
    labels: [
      'k8s:io.cilium.k8s.policy.derived-from=NetworkPolicy',
      `k8s:io.cilium.k8s.policy.name=${name}`,
      `k8s:io.cilium.k8s.policy.namespace=${namespace}`,
    ],
    ingress: mk('ingress', ingressList),
    egress: mk('egress', egressList),
    defaultDeny: { ingress: types.includes('Ingress'), egress: types.includes('Egress') },
  }
}

// ---------------------------------------------------------------- documents

const DNS1123 = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/

function parseDocument(ctx: Ctx, v: unknown, index: number): PolicyDocument {
  if (!isObj(v))
    ctx.fail(
      'INVALID_DOCUMENT',
      '',
      'a policy document must be an object',
      'an object with apiVersion, kind, metadata and spec',
      v,
    )
  const kind = v.kind
  const apiVersion = v.apiVersion
  const expectedApi: Record<string, string> = {
    NetworkPolicy: 'networking.k8s.io/v1',
    CiliumNetworkPolicy: 'cilium.io/v2',
    CiliumClusterwideNetworkPolicy: 'cilium.io/v2',
    CiliumCIDRGroup: 'cilium.io/v2alpha1',
  }
  if (typeof kind !== 'string' || !(kind in expectedApi))
    ctx.fail(
      'UNSUPPORTED_KIND',
      'kind',
      'unsupported kind',
      'NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or CiliumCIDRGroup',
      kind,
    )
  const cidrGroupApi = kind === 'CiliumCIDRGroup' && apiVersion === 'cilium.io/v2'
  if (apiVersion !== expectedApi[kind] && !cidrGroupApi)
    ctx.fail(
      'UNSUPPORTED_KIND',
      'apiVersion',
      `unsupported apiVersion for ${kind}`,
      expectedApi[kind],
      apiVersion,
    )
  const pkind = kind as PolicyKind
  const o = obj(ctx, v, '', ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status'])
  const meta = obj(ctx, o.metadata, 'metadata', Object.keys(isObj(o.metadata) ? o.metadata : {}))
  const name = str(ctx, meta.name, 'metadata.name')
  if (!name) ctx.fail('MISSING_FIELD', 'metadata.name', 'missing name', 'a DNS-1123 name')
  if (name.length > 253 || !DNS1123.test(name))
    ctx.fail(
      'INVALID_VALUE',
      'metadata.name',
      'invalid name',
      'a DNS-1123 subdomain (lowercase alphanumerics, - and .)',
      name,
    )
  let namespace: string | undefined
  if (pkind !== 'CiliumClusterwideNetworkPolicy' && pkind !== 'CiliumCIDRGroup') {
    namespace = str(ctx, meta.namespace, 'metadata.namespace') ?? 'default'
    if (namespace.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace))
      ctx.fail(
        'INVALID_VALUE',
        'metadata.namespace',
        'invalid namespace',
        'a DNS-1123 label',
        namespace,
      )
  }
  const ref = namespace === undefined ? `${pkind}/${name}` : `${pkind}/${namespace}/${name}`
  ctx.label = ref
  const audit = auditAnnotation(ctx, meta.annotations)
  const rules: PolicyRule[] = []
  if (pkind === 'CiliumCIDRGroup') {
    const spec = obj(ctx, o.spec, 'spec', ['externalCIDRs'])
    const list = arr(ctx, spec.externalCIDRs, 'spec.externalCIDRs') ?? []
    const cidrs = list.map((c, i) => parseCidrText(ctx, c, `spec.externalCIDRs[${i}]`))
    return { index, kind: pkind, name, ref, rules, cidrGroup: { cidrs } }
  }
  if (pkind === 'NetworkPolicy') {
    if (o.specs !== undefined)
      ctx.fail('UNKNOWN_FIELD', 'specs', 'NetworkPolicy has no specs', 'spec')
    if (o.spec === undefined || o.spec === null)
      ctx.fail('MISSING_FIELD', 'spec', 'missing spec', 'a NetworkPolicy spec')
    rules.push(parseNetworkPolicy(ctx, o.spec, ref, name, namespace as string))
  } else {
    if (o.spec != null)
      rules.push(parseCiliumSpec(ctx, o.spec, 'spec', pkind, ref, name, namespace))
    const specs = arr(ctx, o.specs, 'specs')
    specs?.forEach((s, i) => {
      rules.push(parseCiliumSpec(ctx, s, `specs[${i}]`, pkind, ref, name, namespace))
    })
    if (o.spec == null && !specs?.length)
      ctx.fail('MISSING_FIELD', 'spec', 'missing spec and specs', 'spec or a non-empty specs list')
  }
  const doc: PolicyDocument = { index, kind: pkind, name, ref, rules }
  if (namespace !== undefined) doc.namespace = namespace
  if (audit) {
    doc.audit = true
    for (const r of rules) r.audit = true
  }
  return doc
}

/** The annotation that puts a policy in audit mode (its denials are reported, not enforced). */
export const AUDIT_ANNOTATION = 'policy.membrane.io/audit'

function auditAnnotation(ctx: Ctx, annotations: unknown): boolean {
  if (annotations === undefined || annotations === null) return false
  if (!isObj(annotations))
    ctx.fail('INVALID_TYPE', 'metadata.annotations', 'annotations must be a map', 'an object')
  const v = (annotations as Record<string, unknown>)[AUDIT_ANNOTATION]
  if (v === undefined) return false
  if (v !== 'true' && v !== 'false')
    ctx.fail(
      'INVALID_VALUE',
      `metadata.annotations.${AUDIT_ANNOTATION}`,
      'invalid audit annotation',
      '"true" or "false"',
      v,
    )
  return v === 'true'
}

/**
 * Parse and validate policy documents: YAML (one or many `---` documents) or JSON (an object,
 * an array of objects, or a `kind: List` with `items`). Throws {@link PolicyError} at the first
 * problem with the document index, field path and what was expected; nothing is returned for a
 * batch with any bad document. Text over `limits` (length, nesting, aliases; see
 * {@link loadPolicyObjects}) is a `LIMIT` error.
 *
 * @example
 * const docs = parsePolicyDocuments(fs.readFileSync('policy.yaml', 'utf8'))
 * repo.upsert(docs)
 */
export function parsePolicyDocuments(
  text: string,
  limits: PolicyLoadLimits = {},
): PolicyDocument[] {
  const raw = loadPolicyObjects(text, limits)
  const out: PolicyDocument[] = []
  const seen = new Map<string, number>()
  raw.forEach((v, i) => {
    const ctx = new Ctx(i, undefined)
    const doc = parseDocument(ctx, v, i)
    const prev = seen.get(doc.ref)
    if (prev !== undefined)
      ctx.fail(
        'DUPLICATE_POLICY',
        'metadata.name',
        `${doc.ref} already appears in document ${prev}`,
        'unique kind/namespace/name in one batch',
      )
    seen.set(doc.ref, i)
    out.push(doc)
  })
  return out
}

/** Parse the already-decoded object form (e.g. from a Kubernetes watch). */
export function parsePolicyObjects(objects: readonly unknown[]): PolicyDocument[] {
  // Already decoded: no length limit (a saved state may hold more than one text's worth).
  return parsePolicyDocuments(JSON.stringify(objects), { maxLength: Number.POSITIVE_INFINITY })
}

/**
 * Give documents that went through the structured clone algorithm (`postMessage` from a worker
 * that parsed them) their class instances back: a clone keeps the data of a {@link Selector}
 * (`requirements`, `key`) but not its prototype. Linear in the documents' size and far cheaper
 * than parsing again. Returns the same array.
 *
 * @example
 * worker.on('message', (m) => repo.upsert(revivePolicyDocuments(m.docs)))
 */
export function revivePolicyDocuments(docs: unknown[]): PolicyDocument[] {
  const stack: unknown[] = [...docs]
  while (stack.length > 0) {
    const v = stack.pop()
    if (v === null || typeof v !== 'object') continue
    if (Array.isArray(v)) {
      for (const x of v) stack.push(x)
      continue
    }
    const o = v as Obj
    const keys = Object.keys(o)
    if (
      keys.length === 2 &&
      typeof o.key === 'string' &&
      Array.isArray(o.requirements) &&
      Object.getPrototypeOf(o) === Object.prototype
    ) {
      Object.setPrototypeOf(o, Selector.prototype)
      continue
    }
    for (const k of keys) stack.push(o[k])
  }
  return docs as PolicyDocument[]
}

/**
 * Validate without throwing: one entry per document, with its error if any. For linters and
 * editors that want every document's problem at once.
 */
export function validatePolicyDocuments(
  text: string,
): Array<{ index: number; ok: boolean; error?: PolicyError }> {
  let raw: unknown[]
  try {
    raw = loadPolicyObjects(text)
  } catch (e) {
    return [{ index: 0, ok: false, error: e as PolicyError }]
  }
  return raw.map((v, i) => {
    try {
      parseDocument(new Ctx(i, undefined), v, i)
      return { index: i, ok: true }
    } catch (e) {
      if (e instanceof PolicyError) return { index: i, ok: false, error: e }
      throw e
    }
  })
}
