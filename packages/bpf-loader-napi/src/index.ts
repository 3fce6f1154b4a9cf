// @membrane/bpf-loader-napi: a native eBPF loader for Node.js (N-API addon over libbpf).

// The codecs are @membrane/types' (one implementation), re-exported for the loader's users.
export type { Codec, LpmKey, StructFields } from '@membrane/types'
export {
  array,
  be16,
  be32,
  bytes,
  i8,
  i16,
  i32,
  i64,
  ipv4,
  ipv6,
  lpmKey,
  struct,
  structAt,
  u8,
  u16,
  u32,
  u64,
} from '@membrane/types'
export type { AddonAttempt } from './_addon'
export { addonCandidates } from './_addon'
export type { TypeLayout } from './btf'
export { codecFromLayout } from './btf'
export type { MapType, ProgramType, UpdateFlag } from './constants'
export {
  BPF_F_LOCK,
  MAP_FLAGS,
  MAP_TYPES,
  mapTypeName,
  PERCPU_MAP_TYPES,
  PROG_TYPES,
  programTypeName,
  UPDATE_FLAGS,
} from './constants'
export type { BpfErrorCodeName, BpfErrorOptions } from './errors'
export { BpfError, BpfErrorCode, errnoName, NotSupportedError, VerifierError } from './errors'
export type { CreateMapOptions, MapInfo, PackedEntries } from './map'
export { BpfMap, createMap, openPinnedMap, possibleCpus, TypedMap } from './map'
export type { LoadOptions, MapSpec, OpenOptions, ProgramSpec } from './object'
export { BpfObject } from './object'
export type { PerfSample } from './perfbuf'
export { PerfBuffer } from './perfbuf'
export type { KernelProbe } from './probes'
export {
  HELPERS,
  probeCgroupLink,
  probeHelper,
  probeKernel,
  probeMapType,
  probeProgramType,
  probeTcx,
} from './probes'
export type {
  CgroupAttachOptions,
  CgroupAttachType,
  TcAttachOptions,
  TestRunOptions,
  TestRunResult,
  XdpAttachOptions,
} from './program'
export {
  BpfLink,
  BpfProgram,
  CGROUP_ATTACH_TYPES,
  openPinnedLink,
  openPinnedProgram,
  TcAttachment,
  XdpAttachment,
} from './program'
export type { RingBufferOptions } from './ringbuf'
export { RingBuffer } from './ringbuf'
export type { SocketLike } from './sockets'
export {
  getIpTransparent,
  getSocketCookie,
  getSocketMark,
  setIpTransparent,
  setSocketMark,
} from './sockets'
