/**
 * The loader's types, imported (never re-declared), and the loader itself loaded lazily: the
 * native addon is only opened when a Datapath is, so importing this package (for its layouts,
 * constants and map wrappers over fakes) needs no addon. `import type` costs nothing at run
 * time.
 */
import type * as Loader from '@membrane/bpf-loader-napi'

/** Kernel facts about a map. */
export type MapInfoLike = Loader.MapInfo

/**
 * The part of a BPF map the map wrappers use: the loader's `BpfMap` fits, and so does the
 * in-memory fake of the unit tests (a class with private fields cannot be faked whole).
 */
export type MapLike = Pick<Loader.BpfMap, 'info' | 'lookup' | 'update' | 'delete' | 'keys'> &
  Partial<Pick<Loader.BpfMap, 'lookupPerCpu' | 'close'>>

/** A TC attachment of a program. */
export type TcAttachmentLike = Loader.TcAttachment
/** A BPF link (cgroup attachments). */
export type LinkLike = Loader.BpfLink
/** A loaded program. */
export type ProgramLike = Loader.BpfProgram
/** An opened BPF object. */
export type ObjectLike = Loader.BpfObject
/** A ring buffer reader. */
export type RingBufferLike = Loader.RingBuffer
/** The loader module. */
export type LoaderModule = typeof Loader

let cached: Promise<LoaderModule> | undefined

/** Load @membrane/bpf-loader-napi (once). */
export function loadLoader(): Promise<LoaderModule> {
  cached ??= import('@membrane/bpf-loader-napi')
  return cached
}
