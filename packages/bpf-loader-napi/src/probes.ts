import { existsSync, readFileSync } from 'node:fs'
import { loadAddon } from './_addon'
import { MAP_TYPES, type MapType, PROG_TYPES, type ProgramType } from './constants'
import { invalid, native } from './errors'

/** Whether the kernel can load programs of `type` (libbpf_probe_bpf_prog_type). */
export function probeProgramType(type: ProgramType): boolean {
  const n = PROG_TYPES[type]
  if (n === undefined) throw invalid('probeProgramType', 'a program type name', type)
  return native(() => loadAddon().probe('prog', n))
}

/** Whether the kernel can create maps of `type` (libbpf_probe_bpf_map_type). */
export function probeMapType(type: MapType): boolean {
  const n = MAP_TYPES[type]
  if (n === undefined) throw invalid('probeMapType', 'a map type name', type)
  return native(() => loadAddon().probe('map', n))
}

/** Whether programs of `progType` may call helper `helperId` (libbpf_probe_bpf_helper). */
export function probeHelper(progType: ProgramType, helperId: number): boolean {
  const n = PROG_TYPES[progType]
  if (n === undefined) throw invalid('probeHelper', 'a program type name', progType)
  return native(() => loadAddon().probe('helper', n, helperId))
}

/** Helper ids the datapath relies on (from the kernel's `enum bpf_func_id`). */
export const HELPERS = {
  map_lookup_elem: 1,
  ktime_get_ns: 5,
  redirect: 23,
  skb_store_bytes: 9,
  l3_csum_replace: 10,
  l4_csum_replace: 11,
  get_socket_cookie: 46,
  fib_lookup: 69,
  sk_lookup_tcp: 84,
  sk_assign: 124,
  ringbuf_output: 130,
  ringbuf_reserve: 131,
  redirect_neigh: 152,
  redirect_peer: 155,
  ktime_get_boot_ns: 125,
  skb_ecn_set_ce: 97,
} as const

/** Whether tcx links work (Linux 6.6+), probed with a link to a nonexistent device. */
export function probeTcx(): boolean {
  const addon = loadAddon()
  // target ifindex 0: a kernel with tcx answers ENODEV, one without answers EINVAL.
  const err = native(() => addon.probeLinkAttach(PROG_TYPES.sched_cls, 0, 46, 0))
  return err === 0 || err === 19
}

/** Whether bpf_link works for cgroup hooks (Linux 5.7+). */
export function probeCgroupLink(): boolean {
  const addon = loadAddon()
  // target fd -1 (EBADF) means the link command and attach type were accepted.
  const err = native(() => addon.probeLinkAttach(PROG_TYPES.cgroup_sock_addr, 10, 10, -1))
  return err === 0 || err === 9
}

const CAPS = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_PERFMON: 38, CAP_BPF: 39 } as const

function effectiveCaps(): bigint {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))
    return m ? BigInt(`0x${m[1]}`) : 0n
  } catch {
    return 0n
  }
}

/**
 * A reachable mount of `fsType`: a later mount over a parent directory can hide an earlier one,
 * so take the last listed mount whose path still has that filesystem type.
 */
function findMount(fsType: 'bpf' | 'cgroup2'): string | undefined {
  const found: string[] = []
  try {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ')
      const dash = f.indexOf('-')
      if (dash > 0 && f[dash + 1] === fsType && f[4]) found.push(f[4].replace(/\\040/g, ' '))
    }
  } catch {
    return undefined
  }
  const addon = loadAddon()
  return found.reverse().find((p) => addon.fsType(p) === fsType)
}

/** One summary of what this kernel and process can do with BPF. */
export interface KernelProbe {
  kernel: string
  libbpf: string
  btf: boolean
  privileges: { root: boolean } & Record<keyof typeof CAPS, boolean>
  mounts: { bpffs: string | undefined; cgroup2: string | undefined }
  programTypes: Partial<Record<ProgramType, boolean>>
  mapTypes: Partial<Record<MapType, boolean>>
  helpers: Partial<Record<keyof typeof HELPERS, boolean>>
  tcx: boolean
  cgroupLink: boolean
  /** Features that could not be probed, with the reason (e.g. no privileges). */
  errors: string[]
}

const PROBED_PROGS: ProgramType[] = [
  'sched_cls',
  'xdp',
  'cgroup_sock_addr',
  'cgroup_sock',
  'cgroup_skb',
  'sock_ops',
  'sk_lookup',
]
const PROBED_MAPS: MapType[] = [
  'hash',
  'array',
  'lru_hash',
  'lpm_trie',
  'percpu_array',
  'percpu_hash',
  'lru_percpu_hash',
  'array_of_maps',
  'hash_of_maps',
  'ringbuf',
  'sockhash',
  'bloom_filter',
]

/**
 * Probes the running kernel: version, privileges, bpffs/cgroup2 mounts, program and map types,
 * the helpers the datapath uses (for sched_cls), tcx and cgroup links.
 */
export function probeKernel(): KernelProbe {
  const addon = loadAddon()
  const caps = effectiveCaps()
  const errors: string[] = []
  const attempt = <T>(what: string, fn: () => T, fallback: T): T => {
    try {
      return fn()
    } catch (error) {
      errors.push(`${what}: ${(error as Error).message}`)
      return fallback
    }
  }
  const programTypes: Partial<Record<ProgramType, boolean>> = {}
  for (const t of PROBED_PROGS)
    programTypes[t] = attempt(`program type ${t}`, () => probeProgramType(t), false)
  const mapTypes: Partial<Record<MapType, boolean>> = {}
  for (const t of PROBED_MAPS) mapTypes[t] = attempt(`map type ${t}`, () => probeMapType(t), false)
  const helpers: Partial<Record<keyof typeof HELPERS, boolean>> = {}
  for (const [name, id] of Object.entries(HELPERS) as Array<[keyof typeof HELPERS, number]>)
    helpers[name] = attempt(`helper ${name}`, () => probeHelper('sched_cls', id), false)
  const privileges = {
    root: process.getuid?.() === 0,
    ...(Object.fromEntries(
      Object.entries(CAPS).map(([k, bit]) => [k, (caps & (1n << BigInt(bit))) !== 0n]),
    ) as Record<keyof typeof CAPS, boolean>),
  }
  return {
    kernel: addon.kernelRelease(),
    libbpf: addon.libbpfVersion,
    btf: existsSync('/sys/kernel/btf/vmlinux'),
    privileges,
    mounts: { bpffs: findMount('bpf'), cgroup2: findMount('cgroup2') },
    programTypes,
    mapTypes,
    helpers,
    tcx: attempt('tcx', probeTcx, false),
    cgroupLink: attempt('cgroup link', probeCgroupLink, false),
    errors,
  }
}
