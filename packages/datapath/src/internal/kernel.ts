import { existsSync, readFileSync } from 'node:fs'

/** One kernel feature endpoint.o and sock.o need, with the first Linux release that has it. */
export interface KernelRequirement {
  feature: string
  minKernel: string
  /** Whether the running kernel has it. */
  present(probe: KernelProbe): boolean
}

/** What the checks read: the kernel's BTF and a map-type probe (libbpf_probe_bpf_map_type). */
export interface KernelProbe {
  btfPath: string
  probeMapType(type: 'ringbuf' | 'lpm_trie' | 'lru_hash'): boolean
}

let btfCache: { path: string; data: Buffer | undefined } | undefined
function btf(path: string): Buffer | undefined {
  if (btfCache?.path !== path)
    btfCache = { path, data: existsSync(path) ? readFileSync(path) : undefined }
  return btfCache.data
}

/**
 * The kernel features the shipped CO-RE objects rely on. CO-RE relocations need the kernel's
 * own BTF; the NAT checksum path reads skb->ip_summed through the bpf_cast_to_kern_ctx kfunc
 * (a BTF function of vmlinux, so its name is in the BTF string table when the kernel has it).
 */
export const KERNEL_REQUIREMENTS: readonly KernelRequirement[] = [
  {
    feature: 'kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF=y) for CO-RE relocation',
    minKernel: '5.4',
    present: (p) => btf(p.btfPath) !== undefined,
  },
  {
    feature: 'BPF ring buffer maps (flow events)',
    minKernel: '5.8',
    present: (p) => p.probeMapType('ringbuf'),
  },
  {
    feature: 'the bpf_cast_to_kern_ctx kfunc (NAT checksum offload state)',
    minKernel: '6.2',
    present: (p) => {
      const data = btf(p.btfPath)
      return data?.includes('\0bpf_cast_to_kern_ctx\0') ?? false
    },
  },
]

/** The first requirement the running kernel misses, or undefined when it has them all. */
export function missingKernelFeature(
  probe: KernelProbe,
  requirements: readonly KernelRequirement[] = KERNEL_REQUIREMENTS,
): KernelRequirement | undefined {
  return requirements.find((r) => !r.present(probe))
}
