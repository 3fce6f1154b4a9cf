/** Map types by name, numbered as in the kernel's `enum bpf_map_type`. */
export const MAP_TYPES = {
  unspec: 0,
  hash: 1,
  array: 2,
  prog_array: 3,
  perf_event_array: 4,
  percpu_hash: 5,
  percpu_array: 6,
  stack_trace: 7,
  cgroup_array: 8,
  lru_hash: 9,
  lru_percpu_hash: 10,
  lpm_trie: 11,
  array_of_maps: 12,
  hash_of_maps: 13,
  devmap: 14,
  sockmap: 15,
  cpumap: 16,
  xskmap: 17,
  sockhash: 18,
  cgroup_storage: 19,
  reuseport_sockarray: 20,
  percpu_cgroup_storage: 21,
  queue: 22,
  stack: 23,
  sk_storage: 24,
  devmap_hash: 25,
  struct_ops: 26,
  ringbuf: 27,
  inode_storage: 28,
  task_storage: 29,
  bloom_filter: 30,
  user_ringbuf: 31,
  cgrp_storage: 32,
  arena: 33,
} as const

/** A map type name (`hash`, `array`, `lru_hash`, `lpm_trie`, `percpu_array`, `ringbuf`...). */
export type MapType = keyof typeof MAP_TYPES

/** Program types by name, numbered as in the kernel's `enum bpf_prog_type`. */
export const PROG_TYPES = {
  unspec: 0,
  socket_filter: 1,
  kprobe: 2,
  sched_cls: 3,
  sched_act: 4,
  tracepoint: 5,
  xdp: 6,
  perf_event: 7,
  cgroup_skb: 8,
  cgroup_sock: 9,
  lwt_in: 10,
  lwt_out: 11,
  lwt_xmit: 12,
  sock_ops: 13,
  sk_skb: 14,
  cgroup_device: 15,
  sk_msg: 16,
  raw_tracepoint: 17,
  cgroup_sock_addr: 18,
  lwt_seg6local: 19,
  lirc_mode2: 20,
  sk_reuseport: 21,
  flow_dissector: 22,
  cgroup_sysctl: 23,
  raw_tracepoint_writable: 24,
  cgroup_sockopt: 25,
  tracing: 26,
  struct_ops: 27,
  ext: 28,
  lsm: 29,
  sk_lookup: 30,
  syscall: 31,
  netfilter: 32,
} as const

/** A program type name (`sched_cls`, `xdp`, `cgroup_sock_addr`...). */
export type ProgramType = keyof typeof PROG_TYPES

function invert<T extends Record<string, number>>(o: T): Map<number, keyof T> {
  return new Map(Object.entries(o).map(([k, v]) => [v, k as keyof T]))
}
const mapNames = invert(MAP_TYPES)
const progNames = invert(PROG_TYPES)

/** The name of a kernel map type number (`unknown(N)` for types newer than this table). */
export function mapTypeName(type: number): MapType {
  return (mapNames.get(type) ?? `unknown(${type})`) as MapType
}

/** The name of a kernel program type number. */
export function programTypeName(type: number): ProgramType {
  return (progNames.get(type) ?? `unknown(${type})`) as ProgramType
}

/** Map types whose values are per possible CPU (lookups return one slot per CPU). */
export const PERCPU_MAP_TYPES: ReadonlySet<MapType> = new Set<MapType>([
  'percpu_hash',
  'percpu_array',
  'lru_percpu_hash',
  'percpu_cgroup_storage',
])

/** Map flags (BPF_F_*) for {@link createMap}. */
export const MAP_FLAGS = {
  NO_PREALLOC: 1 << 0,
  NO_COMMON_LRU: 1 << 1,
  NUMA_NODE: 1 << 2,
  RDONLY: 1 << 3,
  WRONLY: 1 << 4,
  STACK_BUILD_ID: 1 << 5,
  ZERO_SEED: 1 << 6,
  RDONLY_PROG: 1 << 7,
  WRONLY_PROG: 1 << 8,
  CLONE: 1 << 9,
  MMAPABLE: 1 << 10,
  PRESERVE_ELEMS: 1 << 11,
  INNER_MAP: 1 << 12,
} as const

/** Update flags: any (create or replace), noexist (create only), exist (replace only). */
export const UPDATE_FLAGS = { any: 0, noexist: 1, exist: 2 } as const
/** An update mode for {@link BpfMap.update}. */
export type UpdateFlag = keyof typeof UPDATE_FLAGS
/** BPF_F_LOCK, for maps whose value has a bpf_spin_lock. */
export const BPF_F_LOCK = 4
