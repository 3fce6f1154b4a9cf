import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEFAULT_SEED, decodeSeed } from '@membrane/maglev'
import {
  formatIpv4,
  isIpv4,
  isIpv6,
  type ProxyOrigin,
  prefixContainsIp,
  prefixMask,
  u32 as u32Codec,
} from '@membrane/types'
import { ConfigFlag } from './constants'
import { DatapathError, DatapathErrorCode, describeValue } from './errors'
import { missingKernelFeature } from './internal/kernel'
import {
  type LinkLike,
  type LoaderModule,
  loadLoader,
  type MapLike,
  type ObjectLike,
  type ProgramLike,
  type RingBufferLike,
  type TcAttachmentLike,
} from './internal/loader'
import { directMirror, syncDirectMirror } from './internal/mirror'
import { configCodec } from './layouts'
import { type CtGcResult, CtMap } from './maps/ct'
import { EndpointMap, type EndpointRecord, parseLocalCidr4 } from './maps/endpoints'
import { IpcacheMap } from './maps/ipcache'
import { type Counter, MetricsMap } from './maps/metrics'
import { PolicyMap, rebuildPolicyIndex, syncPolicyAny, withPolicyAnyMirror } from './maps/policy'
import { ProxyMap } from './maps/proxy'
import { ServiceMaps } from './maps/services'
import {
  checkPinnedMaps,
  DEFAULT_PIN_ROOT,
  MAP_SPECS,
  validatePinName,
  validatePinRoot,
} from './pins'

/** Which events the programs emit (drops are always reported). */
export interface EventOptions {
  /** A trace event for the first packet of each connection. Default true. */
  traceNew?: boolean
  /** A trace event for every forwarded packet. Default false (costly). */
  traceAll?: boolean
  /** Policy verdict events for new connections. Default true. */
  verdicts?: boolean
  /** Events for socket-level translations. Default false. */
  socketLb?: boolean
}

/** Options of {@link Datapath.open}. */
export interface DatapathOptions {
  /** bpffs directory for the maps. Default `/sys/fs/bpf/membrane`. */
  pinRoot?: string
  /** Where endpoint.o and sock.o are. Default: `$MEMBRANE_BPF_DIR`, else `bpf-src/build` found upwards from the working directory and from this package. */
  objectDir?: string
  /** The L7 proxy's address (the node's router/host IPv4). Needed for L7 redirects. */
  routerIp4?: string
  /**
   * Source address of hairpin service flows (a workload reaching a service through itself);
   * must not be an address of the node. Default 169.254.42.1 (Cilium's IPV4_LOOPBACK).
   */
  hairpinIp4?: string
  /**
   * The L7 proxy's IPv6 address (the node's router/host IPv6; the proxy listens there).
   * Needed for IPv6 L7 redirects: without it an IPv6 flow whose policy names a proxy port is
   * dropped (DROP_PROXY_SET_FAILED).
   */
  routerIp6?: string
  /**
   * Source address of IPv6 hairpin service flows (a workload reaching a service whose
   * backend is itself); must not be an address of the node or of a workload. Default
   * {@link DEFAULT_HAIRPIN_IP6}.
   */
  hairpinIp6?: string
  /**
   * The node's endpoint CIDR (the pool local endpoints' IPv4 addresses come from), e.g.
   * `10.0.1.0/24`. With it the programs skip the local-endpoint lookup for addresses outside
   * it (one hash lookup less for every new connection to another node or the world), and
   * {@link EndpointMap.upsert} refuses an endpoint outside it. Default: not set, every
   * address is looked up.
   */
  localCidr4?: string
  events?: EventOptions
  /**
   * Service ids (1..n-1) whose Maglev tables the programs read from the array
   * `mb_lb_maglev_direct` (4 KiB of kernel memory per slot, allocated up front) instead of
   * the hash `mb_lb_maglev`: one hash lookup less per new service flow. Services beyond it
   * still work, a lookup slower. Default 4096 (16 MiB); the pinned map must match.
   */
  maglevDirectTables?: number
  /** Cluster-wide Maglev seed (base64 of 12 bytes), as @membrane/maglev takes it. */
  maglevSeed?: string
}

/** An endpoint to attach. `ifindex` or `ifname` names the host-side veth. */
export interface AttachEndpointOptions extends Omit<EndpointRecord, 'ifindex'> {
  ifindex?: number
  ifname?: string
}

/** A subscription to raw event records (120-byte `struct mb_event`, decode with @membrane/flows). */
export interface EventSubscription {
  close(): void
}

/**
 * The default source of IPv6 hairpin flows: `fe80::1`, the default of Cilium's
 * `ipv6-service-loopback-address`. A link-local source is forwarded here because a hairpin
 * packet leaves through the interface it came in by (the kernel refuses to forward a
 * link-local source to another interface, not back out of the same one), and workloads
 * wired like Membrane endpoints route `fe80::/64` to their veth.
 */
export const DEFAULT_HAIRPIN_IP6 = 'fe80::1'

const TC_PRIORITY = 1

const DEFAULT_MAGLEV_DIRECT_TABLES = MAP_SPECS.mb_lb_maglev_direct?.maxEntries ?? 4096

/** Hash maps and the array mirrors the programs read instead (internal/mirror.ts). */
const DIRECT_MIRRORS = [
  ['mb_endpoints', 'mb_ep_direct'],
  ['mb_lb4_backends', 'mb_lb4_be_direct'],
  ['mb_lb_maglev', 'mb_lb_maglev_direct'],
] as const
const TC_HANDLE = 1
const SOCK_HOOKS = [
  ['sock_connect4', 'connect4'],
  ['sock_sendmsg4', 'sendmsg4'],
  ['sock_recvmsg4', 'recvmsg4'],
  ['sock_getpeername4', 'getpeername4'],
  ['sock_connect6', 'connect6'],
  ['sock_sendmsg6', 'sendmsg6'],
  ['sock_recvmsg6', 'recvmsg6'],
  ['sock_getpeername6', 'getpeername6'],
] as const

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/

/**
 * Where endpoint.o and sock.o are: `$MEMBRANE_BPF_DIR`, else the CO-RE objects shipped in this
 * package (`bpf/` next to `dist/`, copied in by tools/pack.mjs), else `bpf-src/build` found
 * upwards from the working directory and from this module (the workspace).
 */
function findObjectDir(): string {
  if (process.env.MEMBRANE_BPF_DIR) return process.env.MEMBRANE_BPF_DIR
  const tried: string[] = []
  let here: string | undefined
  try {
    here = dirname(fileURLToPath(import.meta.url))
  } catch {
    here = typeof __dirname === 'string' ? __dirname : undefined
  }
  if (here) {
    const shipped = resolve(here, '..', 'bpf')
    if (existsSync(join(shipped, 'endpoint.o'))) return shipped
    tried.push(shipped)
  }
  for (const start of here ? [process.cwd(), here] : [process.cwd()]) {
    let dir = resolve(start)
    for (;;) {
      const candidate = join(dir, 'bpf-src', 'build')
      if (existsSync(join(candidate, 'endpoint.o'))) return candidate
      const up = dirname(dir)
      if (up === dir) break
      dir = up
    }
    tried.push(`bpf-src/build upwards of ${resolve(start)}`)
  }
  throw new DatapathError(
    DatapathErrorCode.OBJECT_NOT_FOUND,
    `endpoint.o not found (looked in ${tried.join('; ')}): pass objectDir or set MEMBRANE_BPF_DIR; inside the Membrane repository, build the objects with \`node tools/bpf-build.mjs\``,
    { path: 'objectDir' },
  )
}

function ifindexOf(ifname: string): number {
  if (!IFNAME.test(ifname))
    throw new DatapathError(
      DatapathErrorCode.INVALID_NAME,
      `expected an interface name, got ${describeValue(ifname)}`,
      {
        path: 'endpoint.ifname',
      },
    )
  try {
    return Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8').trim())
  } catch (cause) {
    throw new DatapathError(
      DatapathErrorCode.NOT_FOUND,
      `no interface ${ifname} in this network namespace`,
      {
        path: 'endpoint.ifname',
        cause,
      },
    )
  }
}

function ifnameOf(ifindex: number): string | undefined {
  try {
    for (const name of readdirSync('/sys/class/net')) {
      if (Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim()) === ifindex)
        return name
    }
  } catch {
    // no sysfs
  }
  return undefined
}

/**
 * The Membrane datapath on this node: loads bpf-src's endpoint programs (one load serves
 * every endpoint), owns their pinned maps, attaches endpoints to their host-side veths and the
 * socket-LB programs to cgroups, and exposes typed maps.
 *
 * @example
 * const dp = await Datapath.open({ pinRoot: '/sys/fs/bpf/membrane', routerIp4: '10.0.0.1' })
 * await dp.attachEndpoint({ id: 12, ifname: 'lxc12', ip: '10.0.1.12', mac: '02:..', identity: 256 })
 * dp.policyMap(12).apply(diff)        // from @membrane/policy
 * dp.services.upsert({ address: '10.96.0.10', port: 80, backends: [...] })
 * const sub = dp.events((record) => flows.push(decodeEvent(record)))
 * await dp.close({ keepPrograms: true }) // programs keep enforcing while the agent is away
 */
export class Datapath {
  readonly pinRoot: string
  readonly objectDir: string
  /** Endpoint records (by host-veth ifindex / by IP). */
  readonly endpoints: EndpointMap
  /** IP prefix -> identity. */
  readonly ipcache: IpcacheMap
  /** Services, backends and Maglev tables. */
  readonly services: ServiceMaps
  /** Connection tracking: dump and GC. */
  readonly ct: CtMap
  /** Forward/drop counters. */
  readonly metrics: MetricsMap
  /** L7 proxy original destinations. */
  readonly proxy: ProxyMap

  /**
   * Slots of `mb_lb_maglev_direct` (the `maglevDirectTables` option). Another object loaded
   * with this pin root must be given the same size (`setMaxEntries`) before its load.
   */
  readonly maglevDirectTables: number
  readonly #loader: LoaderModule
  readonly #endpointObj: ObjectLike
  #sockObj: ObjectLike | undefined
  readonly #tc = new Map<
    number,
    { ifindex: number; ingress: TcAttachmentLike; egress: TcAttachmentLike }
  >()
  readonly #cgroups = new Map<string, LinkLike[]>()
  #overlay: TcAttachmentLike | undefined
  readonly #subs = new Set<{ listener: (r: Buffer) => void; rings: RingBufferLike[] }>()
  #config: {
    routerIp4: string
    hairpinIp4: string
    routerIp6: string
    hairpinIp6: string
    flags: number
    hashSeed: number
    hashSeed6: number
    localNet4: string
    localMask4: string
    tunnelIfindex: number
  }
  #gcTimer: NodeJS.Timeout | undefined
  #closed = false

  private constructor(
    loader: LoaderModule,
    pinRoot: string,
    objectDir: string,
    obj: ObjectLike,
    options: DatapathOptions,
  ) {
    this.#loader = loader
    this.pinRoot = pinRoot
    this.maglevDirectTables = options.maglevDirectTables ?? DEFAULT_MAGLEV_DIRECT_TABLES
    this.objectDir = objectDir
    this.#endpointObj = obj
    const m = (name: string) => obj.map(name)
    this.endpoints = new EndpointMap(
      directMirror(m('mb_endpoints'), m('mb_ep_direct')),
      m('mb_lxc4'),
      m('mb_lxc6'),
      options.localCidr4 !== undefined ? { localCidr4: options.localCidr4 } : {},
    )
    const local = options.localCidr4 !== undefined ? parseLocalCidr4(options.localCidr4) : undefined
    this.ipcache = new IpcacheMap(m('mb_ipcache'))
    this.services = new ServiceMaps(
      {
        services: m('mb_lb4_services'),
        backends: directMirror(m('mb_lb4_backends'), m('mb_lb4_be_direct')),
        slots: m('mb_lb_slots'),
        maglev: directMirror(m('mb_lb_maglev'), m('mb_lb_maglev_direct')),
        services6: m('mb_lb6_services'),
        backends6: m('mb_lb6_backends'),
        revNat6: m('mb_lb6_reverse_nat'),
      },
      options.maglevSeed ? { maglevSeed: options.maglevSeed } : {},
    )
    this.ct = new CtMap(m('mb_ct4'), m('mb_ct6'))
    this.metrics = new MetricsMap(m('mb_metrics'))
    this.proxy = new ProxyMap(m('mb_proxy4'), m('mb_proxy6'))
    const old = m('mb_config').lookup(u32Codec.encode(0))
    const current = old ? configCodec.decode(old) : undefined
    this.#config = {
      routerIp4: current?.routerIp4 ?? '0.0.0.0',
      hairpinIp4: current && current.hairpinIp4 !== '0.0.0.0' ? current.hairpinIp4 : '169.254.42.1',
      routerIp6: current?.routerIp6 ?? '::',
      hairpinIp6: current && current.hairpinIp6 !== '::' ? current.hairpinIp6 : DEFAULT_HAIRPIN_IP6,
      flags: current?.flags ?? 0,
      hashSeed: decodeSeed(options.maglevSeed ?? DEFAULT_SEED).jhash0,
      hashSeed6: decodeSeed(options.maglevSeed ?? DEFAULT_SEED).jhash1,
      localNet4: formatIpv4(Number(local?.address ?? 0n)),
      localMask4: formatIpv4(Number(local ? prefixMask(4, local.length) : 0n)),
      tunnelIfindex: current?.tunnelIfindex ?? 0,
    }
  }

  /**
   * Load the endpoint programs with their maps pinned under `pinRoot` (created if needed;
   * existing pins are reused, an incompatible one is an error — never emptied).
   */
  static async open(options: DatapathOptions = {}): Promise<Datapath> {
    const pinRoot = validatePinRoot(options.pinRoot ?? DEFAULT_PIN_ROOT)
    if (options.localCidr4 !== undefined && !parseLocalCidr4(options.localCidr4))
      throw new DatapathError(
        DatapathErrorCode.INVALID_VALUE,
        `expected an IPv4 CIDR such as 10.0.1.0/24, got ${describeValue(options.localCidr4)}`,
        { path: 'localCidr4' },
      )
    const tables = options.maglevDirectTables ?? DEFAULT_MAGLEV_DIRECT_TABLES
    if (!Number.isInteger(tables) || tables < 1 || tables > 65536)
      throw new DatapathError(
        DatapathErrorCode.INVALID_VALUE,
        `expected an integer 1..65536, got ${describeValue(options.maglevDirectTables)}`,
        { path: 'maglevDirectTables' },
      )
    const objectDir = options.objectDir ?? findObjectDir()
    const loader = await loadLoader()
    // Before libbpf tries: a kernel without a feature the objects use would otherwise fail
    // deep in relocation or the verifier.
    const missing = missingKernelFeature({
      btfPath: '/sys/kernel/btf/vmlinux',
      probeMapType: (t) => loader.probeMapType(t),
    })
    if (missing)
      throw new loader.NotSupportedError(missing.feature, { minKernel: missing.minKernel })
    mkdirSync(pinRoot, { recursive: true, mode: 0o700 })
    checkPinnedMaps(pinRoot, (p) => loader.openPinnedMap(p), {
      mb_lb_maglev_direct: { maxEntries: tables },
    })
    const obj = loader.BpfObject.open(join(objectDir, 'endpoint.o'), {
      pinRoot,
      name: 'mb_endpoint',
    })
    try {
      obj.setMaxEntries('mb_lb_maglev_direct', tables)
      await obj.load()
    } catch (error) {
      try {
        obj.close()
      } catch {
        // the load error is the one to report
      }
      throw error
    }
    try {
      const dp = new Datapath(loader, pinRoot, objectDir, obj, options)
      // Before anything is written to the pinned maps (programs of an earlier process may be
      // attached and reading them): endpoints already pinned outside localCidr4 would lose
      // their ingress check for local senders, who would take them for remote.
      if (options.localCidr4 !== undefined) {
        const local = parseLocalCidr4(options.localCidr4)
        const outside = local
          ? dp.endpoints.list().filter((e) => !prefixContainsIp(local, e.ip))
          : []
        if (outside.length > 0)
          throw new DatapathError(
            DatapathErrorCode.INVALID_VALUE,
            `endpoint(s) ${outside.map((e) => `${e.id} (${e.ip})`).join(', ')} pinned under ${pinRoot} are outside localCidr4 ${options.localCidr4}: detach them first or open without localCidr4. Nothing was changed.`,
            { path: 'localCidr4' },
          )
      }
      // The exact-match index follows the trie (pins of an older version have no index, and
      // an interrupted write may have left it behind).
      rebuildPolicyIndex(
        obj.map('mb_policy'),
        withPolicyAnyMirror(obj.map('mb_policy_fast'), obj.map('mb_policy_any')),
      )
      syncPolicyAny(obj.map('mb_policy_fast'), obj.map('mb_policy_any'))
      // The array mirrors follow their hashes (pins of a version without them; a crash
      // between the two writes). Before any endpoint is attached to the new programs.
      for (const [hash, direct] of DIRECT_MIRRORS) syncDirectMirror(obj.map(hash), obj.map(direct))
      dp.configure({
        ...(options.routerIp4 ? { routerIp4: options.routerIp4 } : {}),
        ...(options.hairpinIp4 ? { hairpinIp4: options.hairpinIp4 } : {}),
        ...(options.routerIp6 ? { routerIp6: options.routerIp6 } : {}),
        ...(options.hairpinIp6 ? { hairpinIp6: options.hairpinIp6 } : {}),
        events: options.events ?? {},
      })
      return dp
    } catch (error) {
      try {
        obj.close()
      } catch {
        // the first error is the one to report
      }
      throw error
    }
  }

  #check(): void {
    if (this.#closed) throw new DatapathError(DatapathErrorCode.CLOSED, 'the Datapath is closed')
  }

  /** Change the proxy address or which events are emitted (takes effect at once). */
  configure(options: {
    routerIp4?: string
    /** Source of IPv4 hairpin flows (not an address of the node); `0.0.0.0` turns hairpin off. */
    hairpinIp4?: string
    /** The L7 proxy's IPv6 address; `::` turns IPv6 redirects off. */
    routerIp6?: string
    /** Source of IPv6 hairpin flows; `::` turns IPv6 hairpin off. */
    hairpinIp6?: string
    events?: EventOptions
  }): void {
    this.#check()
    for (const key of ['routerIp6', 'hairpinIp6'] as const) {
      const value = options[key]
      if (value !== undefined && !isIpv6(value))
        throw new DatapathError(
          DatapathErrorCode.INVALID_VALUE,
          `expected an IPv6 address, got ${describeValue(value)}`,
          { path: key },
        )
    }
    for (const key of ['routerIp4', 'hairpinIp4'] as const) {
      const value = options[key]
      if (value !== undefined && !isIpv4(value))
        throw new DatapathError(
          DatapathErrorCode.INVALID_VALUE,
          `expected an IPv4 address, got ${describeValue(value)}`,
          { path: key },
        )
    }
    if (options.routerIp4) this.#config.routerIp4 = options.routerIp4
    if (options.hairpinIp4) this.#config.hairpinIp4 = options.hairpinIp4
    if (options.routerIp6) this.#config.routerIp6 = options.routerIp6
    if (options.hairpinIp6) this.#config.hairpinIp6 = options.hairpinIp6
    if (options.events) {
      const e = options.events
      let flags = 0
      if (e.traceNew ?? true) flags |= ConfigFlag.TRACE_NEW
      if (e.traceAll ?? false) flags |= ConfigFlag.TRACE_ALL
      if (e.verdicts ?? true) flags |= ConfigFlag.VERDICTS
      if (e.socketLb ?? false) flags |= ConfigFlag.SOCK_LB_EVENTS
      this.#config.flags = flags
    }
    this.#endpointObj.map('mb_config').update(
      u32Codec.encode(0),
      configCodec.encode({
        flags: this.#config.flags,
        routerIp4: this.#config.routerIp4,
        hashSeed: this.#config.hashSeed,
        hairpinIp4: this.#config.hairpinIp4,
        hashSeed6: this.#config.hashSeed6,
        routerIp6: this.#config.routerIp6,
        localNet4: this.#config.localNet4,
        localMask4: this.#config.localMask4,
        tunnelIfindex: this.#config.tunnelIfindex,
        hairpinIp6: this.#config.hairpinIp6,
      }),
    )
  }

  /**
   * The maps @membrane/bandwidth's `BandwidthManager` writes: `throttle` is `mb_throttle`
   * (per-endpoint EDT / token-bucket entries), `present` is `mb_throttle_on` (which endpoints
   * have an entry, so the programs can skip the lookup). Both are pinned under `pinRoot`.
   *
   * @example
   * const { throttle, present } = dp.bandwidthMaps()
   * const bw = await BandwidthManager.create({ map: throttle, present })
   */
  bandwidthMaps(): { throttle: MapLike; present: MapLike } {
    this.#check()
    return {
      throttle: this.#endpointObj.map('mb_throttle'),
      present: this.#endpointObj.map('mb_throttle_on'),
    }
  }

  /**
   * A map of the endpoint object by its C name, untyped. An escape hatch for the datapath's own
   * tests and benchmarks, which poke at maps that have no typed accessor (`mb_ep_direct`,
   * `mb_frag4`, ...): writing to a map behind the typed wrappers' back breaks their invariants
   * (mirrors, index maps). Packages use the typed accessors (`endpoints`, `ipcache`,
   * `services`, `ct`, `metrics`, `proxy`, {@link Datapath.policyMap},
   * {@link Datapath.bandwidthMaps}) instead.
   */
  unsafeMap(name: string): MapLike {
    this.#check()
    return this.#endpointObj.map(name)
  }

  /**
   * A program of the endpoint object: `from_container`, `to_container` (attached), the IPv6
   * halves they tail-call, `from_overlay` (attached by {@link Datapath.attachOverlay}) or
   * `to_overlay` (tail-called by from_container for flows to other nodes).
   */
  program(
    name:
      | 'from_container'
      | 'to_container'
      | 'from_container6'
      | 'to_container6'
      | 'from_overlay'
      | 'to_overlay',
  ): ProgramLike {
    this.#check()
    return this.#endpointObj.program(name)
  }

  /**
   * How many policy entries the kernel can hold, for all endpoints together: `entries` of the
   * trie (`mb_policy`) and `indexRecords` of the exact-match index (`mb_policy_fast`), as the
   * loaded maps were created (see {@link PolicyMap.usage} for what one endpoint occupies).
   */
  policyCapacity(): { entries: number; indexRecords: number } {
    this.#check()
    return {
      entries: this.#endpointObj.map('mb_policy').info.maxEntries,
      indexRecords: this.#endpointObj.map('mb_policy_fast').info.maxEntries,
    }
  }

  /** The policy entries of one endpoint. */
  policyMap(endpointId: number): PolicyMap {
    this.#check()
    return new PolicyMap(
      this.#endpointObj.map('mb_policy'),
      endpointId,
      withPolicyAnyMirror(
        this.#endpointObj.map('mb_policy_fast'),
        this.#endpointObj.map('mb_policy_any'),
      ),
    )
  }

  /**
   * Write an endpoint's record and attach its programs to its host-side veth
   * (from_container on tc ingress, to_container on tc egress; replaces earlier attachments,
   * also those of a previous process). Policy entries should be applied before traffic
   * starts: with enforcement on and no entries, everything is denied.
   */
  async attachEndpoint(options: AttachEndpointOptions): Promise<EndpointRecord> {
    this.#check()
    const ifindex = options.ifindex ?? (options.ifname ? ifindexOf(options.ifname) : undefined)
    if (ifindex === undefined)
      throw new DatapathError(DatapathErrorCode.INVALID_VALUE, 'expected ifindex or ifname', {
        path: 'endpoint',
      })
    let nodeMac = options.nodeMac
    if (!nodeMac) {
      const name = options.ifname ?? ifnameOf(ifindex)
      if (name && IFNAME.test(name)) {
        try {
          nodeMac = readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim()
        } catch {
          // left zero
        }
      }
    }
    const { ifname: _ifname, ...rest } = options
    const record: EndpointRecord = { ...rest, ifindex, ...(nodeMac ? { nodeMac } : {}) }
    const clash = this.endpoints.byId(record.id)
    if (clash && clash.ifindex !== ifindex)
      throw new DatapathError(
        DatapathErrorCode.CONFLICT,
        `endpoint id ${record.id} is already attached to ifindex ${clash.ifindex}`,
        { path: 'endpoint.id' },
      )
    this.endpoints.upsert(record)
    const tcOpts = { ifindex, priority: TC_PRIORITY, handle: TC_HANDLE, replace: true }
    const ingress = await this.#endpointObj
      .program('from_container')
      .attachTc({ ...tcOpts, direction: 'ingress' })
    let egress: TcAttachmentLike
    try {
      egress = await this.#endpointObj
        .program('to_container')
        .attachTc({ ...tcOpts, direction: 'egress' })
    } catch (error) {
      await ingress.detach()
      throw error
    }
    this.#tc.set(record.id, { ifindex, ingress, egress })
    return record
  }

  /**
   * Detach an endpoint's programs and remove its record and (unless `keepPolicy`) its policy
   * entries. Works for endpoints attached by an earlier process too.
   */
  async detachEndpoint(id: number, options: { keepPolicy?: boolean } = {}): Promise<boolean> {
    this.#check()
    const att = this.#tc.get(id)
    const rec = this.endpoints.byId(id)
    if (att) {
      await att.ingress.detach()
      await att.egress.detach()
      this.#tc.delete(id)
    } else if (rec && ifnameOf(rec.ifindex)) {
      // Attached by an earlier process: take the filter over (replace), then remove it.
      const tcOpts = {
        ifindex: rec.ifindex,
        priority: TC_PRIORITY,
        handle: TC_HANDLE,
        replace: true,
      }
      const i = await this.#endpointObj
        .program('from_container')
        .attachTc({ ...tcOpts, direction: 'ingress' })
      await i.detach()
      const e = await this.#endpointObj
        .program('to_container')
        .attachTc({ ...tcOpts, direction: 'egress' })
      await e.detach()
    }
    if (rec) this.endpoints.delete(rec.ifindex)
    if (!options.keepPolicy) this.policyMap(id).clear()
    return att !== undefined || rec !== undefined
  }

  /**
   * Turn the overlay on: attach `from_overlay` at tc ingress of the node's VXLAN device (one per
   * node, created in external/collect-metadata mode, e.g.
   * `ip link add mb_vxlan type vxlan external dstport 8472`) and record its ifindex, so that a
   * new flow whose destination's ipcache entry names a tunnel endpoint (another node's IPv4
   * address, `ipcache.upsert(prefix, identity, { tunnelEndpoint })`) is encapsulated with the
   * sender's identity as the VNI and sent there; packets from the device take their source
   * identity from the VNI and meet the destination's ingress policy. Workloads need an MTU of
   * the underlay's minus {@link VXLAN_OVERHEAD} ({@link podMtu}). Without the overlay (native
   * routing) the stack routes remote pod addresses and the receiving node takes the source
   * identity from its ipcache.
   *
   * @example
   * await dp.attachOverlay({ ifname: 'mb_vxlan' })
   * dp.ipcache.upsert('10.1.2.7/32', 4242, { tunnelEndpoint: '192.168.0.2' })
   */
  async attachOverlay(options: { ifindex?: number; ifname?: string }): Promise<void> {
    this.#check()
    const ifindex = options.ifindex ?? (options.ifname ? ifindexOf(options.ifname) : undefined)
    if (ifindex === undefined || !Number.isInteger(ifindex) || ifindex < 1)
      throw new DatapathError(
        DatapathErrorCode.INVALID_VALUE,
        `expected the ifindex or name of an existing VXLAN device, got ${describeValue(options.ifindex ?? options.ifname)}`,
        { path: 'overlay' },
      )
    this.#overlay = await this.#endpointObj.program('from_overlay').attachTc({
      ifindex,
      priority: TC_PRIORITY,
      handle: TC_HANDLE,
      replace: true,
      direction: 'ingress',
    })
    this.#config.tunnelIfindex = ifindex
    this.configure({})
  }

  /** Turn the overlay off: new flows to other nodes go to the stack (native routing). */
  async detachOverlay(): Promise<void> {
    this.#check()
    this.#config.tunnelIfindex = 0
    this.configure({})
    await this.#overlay?.detach()
    this.#overlay = undefined
  }

  async #sock(): Promise<ObjectLike> {
    if (!this.#sockObj) {
      const obj = this.#loader.BpfObject.open(join(this.objectDir, 'sock.o'), {
        pinRoot: this.pinRoot,
        name: 'mb_sock',
      })
      try {
        obj.setMaxEntries('mb_lb_maglev_direct', this.maglevDirectTables)
        await obj.load()
      } catch (error) {
        obj.close()
        throw error
      }
      this.#sockObj = obj
      for (const sub of this.#subs)
        sub.rings.push(new this.#loader.RingBuffer(obj.map('mb_events'), sub.listener))
    }
    return this.#sockObj
  }

  #linkPinDir(cgroupPath: string): string {
    const tag = createHash('sha256').update(resolve(cgroupPath)).digest('hex').slice(0, 16)
    return join(this.pinRoot, 'links', validatePinName(`cg_${tag}`))
  }

  /**
   * Attach socket-level load balancing (connect, sendmsg, recvmsg, getpeername; IPv4 and
   * IPv6) to a cgroup v2 directory: sockets of processes in it connect to backends directly.
   */
  async attachSocketLb(cgroupPath: string): Promise<void> {
    this.#check()
    const cg = resolve(cgroupPath)
    if (!existsSync(join(cg, 'cgroup.procs')))
      throw new DatapathError(DatapathErrorCode.NOT_FOUND, `${cg} is not a cgroup v2 directory`, {
        path: 'cgroupPath',
      })
    const obj = await this.#sock()
    const old = this.#cgroups.get(cg)
    const links: LinkLike[] = []
    try {
      for (const [prog, attachType] of SOCK_HOOKS)
        links.push(
          await obj.program(prog).attachCgroup({ cgroupPath: cg, attachType, multi: true }),
        )
    } catch (error) {
      for (const l of links) await l.detach()
      throw error
    }
    this.#cgroups.set(cg, links)
    if (old) for (const l of old) await l.detach()
    // Links pinned by an earlier process for this cgroup: unpinning detaches them.
    const dir = this.#linkPinDir(cg)
    if (existsSync(dir)) for (const f of readdirSync(dir)) unlinkSync(join(dir, f))
  }

  /** Detach socket LB from a cgroup. */
  async detachSocketLb(cgroupPath: string): Promise<boolean> {
    this.#check()
    const cg = resolve(cgroupPath)
    const links = this.#cgroups.get(cg)
    if (links) for (const l of links) await l.detach()
    this.#cgroups.delete(cg)
    const dir = this.#linkPinDir(cg)
    let pinned = false
    if (existsSync(dir))
      for (const f of readdirSync(dir)) {
        unlinkSync(join(dir, f))
        pinned = true
      }
    return links !== undefined || pinned
  }

  /**
   * Subscribe to raw event records (each a 120-byte `struct mb_event`; @membrane/flows
   * decodes them). Records arrive on the event loop.
   */
  events(listener: (record: Buffer) => void): EventSubscription {
    this.#check()
    const rings: RingBufferLike[] = [
      new this.#loader.RingBuffer(this.#endpointObj.map('mb_events'), listener),
    ]
    if (this.#sockObj)
      rings.push(new this.#loader.RingBuffer(this.#sockObj.map('mb_events'), listener))
    const sub = { listener, rings }
    this.#subs.add(sub)
    return {
      close: () => {
        for (const r of sub.rings) r.close()
        this.#subs.delete(sub)
      },
    }
  }

  /** Forward/drop counters by reason and direction, summed over CPUs. */
  counters(): Counter[] {
    this.#check()
    return this.metrics.read()
  }

  /**
   * The original destination of a client connection redirected to the L7 proxy (`mb_proxy4`
   * for an IPv4 client, `mb_proxy6` for an IPv6 one; `::ffff:a.b.c.d` counts as IPv4).
   */
  lookupProxyOrigin(
    clientIp: string,
    clientPort: number,
    protocol: 'TCP' | 'UDP' | number = 'TCP',
  ): ProxyOrigin | undefined {
    this.#check()
    return this.proxy.lookup(clientIp, clientPort, protocol)
  }

  /** Conntrack GC, then deletion of drained backends no connection uses any more. */
  gc(now?: bigint): { ct: CtGcResult; backendsDeleted: number[] } {
    this.#check()
    const ct = this.ct.gc(now)
    return { ct, backendsDeleted: this.services.gcBackends(ct.referencedBackends) }
  }

  /**
   * Run {@link Datapath.gc} every `intervalMs` (default 60 s) until the returned function is
   * called or the Datapath closes. `onResult` sees each result (or error).
   */
  startGc(
    intervalMs = 60_000,
    onResult?: (result: ReturnType<Datapath['gc']> | Error) => void,
  ): () => void {
    this.#check()
    if (!Number.isInteger(intervalMs) || intervalMs < 100)
      throw new DatapathError(
        DatapathErrorCode.INVALID_VALUE,
        `expected an interval >= 100 ms, got ${describeValue(intervalMs)}`,
        {
          path: 'intervalMs',
        },
      )
    clearInterval(this.#gcTimer)
    const timer = setInterval(() => {
      try {
        const r = this.gc()
        onResult?.(r)
      } catch (error) {
        onResult?.(error as Error)
      }
    }, intervalMs)
    timer.unref()
    this.#gcTimer = timer
    return () => {
      clearInterval(timer)
      if (this.#gcTimer === timer) this.#gcTimer = undefined
    }
  }

  /**
   * Release this process's handles. With `keepPrograms`, attached programs keep running (tc
   * filters stay; cgroup links are pinned under `<pinRoot>/links`) and a later
   * {@link Datapath.open} on the same pin root picks the maps up again. Without it, every
   * attachment this process made is removed. Pinned maps always stay.
   */
  async close(options: { keepPrograms?: boolean } = {}): Promise<void> {
    if (this.#closed) return
    clearInterval(this.#gcTimer)
    for (const sub of this.#subs) for (const r of sub.rings) r.close()
    this.#subs.clear()
    if (options.keepPrograms) {
      for (const [cg, links] of this.#cgroups) {
        const dir = this.#linkPinDir(cg)
        mkdirSync(dir, { recursive: true })
        for (const [i, l] of links.entries()) l.pin(join(dir, SOCK_HOOKS[i]?.[1] ?? `link${i}`))
        for (const l of links) l.close()
      }
    } else {
      for (const { ingress, egress } of this.#tc.values()) {
        await ingress.detach()
        await egress.detach()
      }
      await this.#overlay?.detach()
      for (const links of this.#cgroups.values()) for (const l of links) await l.detach()
    }
    this.#tc.clear()
    this.#cgroups.clear()
    this.#sockObj?.close()
    this.#endpointObj.close()
    this.#closed = true
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
