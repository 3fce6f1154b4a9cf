import { existsSync } from 'node:fs'
import { describe } from 'vitest'
import { hasCommand, runSync } from './exec'
import { ensureBpffs, ensureCgroup2 } from './mounts'

/**
 * What a kernel test can ask for. `bin:<name>` asks for a program on PATH (iperf3, dnsmasq...).
 */
export type KernelFeature =
  | 'root'
  | 'bpf'
  | 'btf'
  | 'netns'
  | 'tc'
  | 'bpffs'
  | 'cgroup2'
  | 'etcd'
  | 'clang'
  | `bin:${string}`

/** The answer of {@link requireKernel}: either everything is there, or the first missing reason. */
export type KernelCheck = { ok: true } | { ok: false; reason: string }

const cache = new Map<KernelFeature, string | undefined>()

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

/** Why `feature` is unavailable here, or undefined when it is available. */
function missing(feature: KernelFeature): string | undefined {
  if (cache.has(feature)) return cache.get(feature)
  const reason = probe(feature)
  cache.set(feature, reason)
  return reason
}

function probe(feature: KernelFeature): string | undefined {
  if (feature.startsWith('bin:')) {
    const bin = feature.slice(4)
    return hasCommand(bin) ? undefined : `${bin} is not installed (run tools/setup.sh)`
  }
  switch (feature) {
    case 'root':
      return isRoot() ? undefined : 'needs root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN)'
    case 'btf':
      return existsSync('/sys/kernel/btf/vmlinux')
        ? undefined
        : 'kernel has no BTF at /sys/kernel/btf/vmlinux'
    case 'bpf': {
      const r = missing('root')
      if (r) return r
      if (!hasCommand('bpftool')) return 'bpftool is not installed (run tools/setup.sh)'
      try {
        // Listing programs goes through the bpf() syscall: it fails where BPF is unavailable.
        runSync('bpftool', ['-j', 'prog', 'show'])
        return undefined
      } catch (error) {
        return `bpf() syscall unusable: ${(error as Error).message.split('\n').slice(-1)[0]}`
      }
    }
    case 'netns': {
      const r = missing('root')
      if (r) return r
      if (!hasCommand('ip')) return 'iproute2 (ip) is not installed'
      try {
        runSync('ip', ['netns', 'list'])
        return undefined
      } catch (error) {
        return `network namespaces unusable: ${(error as Error).message}`
      }
    }
    case 'tc':
      return hasCommand('tc') ? undefined : 'tc (iproute2) is not installed'
    case 'bpffs': {
      const r = missing('root')
      if (r) return r
      try {
        ensureBpffs()
        return undefined
      } catch (error) {
        return `cannot mount bpffs at /sys/fs/bpf: ${(error as Error).message}`
      }
    }
    case 'cgroup2': {
      const r = missing('root')
      if (r) return r
      try {
        ensureCgroup2()
        return undefined
      } catch (error) {
        return `cannot mount a cgroup v2 hierarchy: ${(error as Error).message}`
      }
    }
    case 'etcd':
      return hasCommand('etcd') ? undefined : 'etcd-server is not installed (run tools/setup.sh)'
    case 'clang':
      return hasCommand('clang-19') ? undefined : 'clang-19 is not installed (run tools/setup.sh)'
  }
}

/** True when CI asked for every kernel test to run (`MEMBRANE_REQUIRE_KERNEL=1`). */
export function kernelRequired(): boolean {
  return process.env.MEMBRANE_REQUIRE_KERNEL === '1'
}

/**
 * Check that this machine can run a kernel test. Returns `{ ok: false, reason }` so the caller
 * can skip and say why — except under `MEMBRANE_REQUIRE_KERNEL=1`, where a missing feature
 * throws, so that CI fails instead of silently skipping.
 *
 * @example
 * const k = requireKernel(['bpf', 'netns'])
 * it.skipIf(!k.ok)('drops denied packets', ...)
 */
export function requireKernel(features: readonly KernelFeature[] = ['root', 'bpf']): KernelCheck {
  for (const feature of features) {
    const reason = missing(feature)
    if (reason !== undefined) {
      if (kernelRequired()) {
        throw new Error(
          `MEMBRANE_REQUIRE_KERNEL=1 but this kernel test cannot run: ${feature}: ${reason}`,
        )
      }
      return { ok: false, reason: `${feature}: ${reason}` }
    }
  }
  return { ok: true }
}

/**
 * `describe` for kernel tests: runs the suite when every feature is present, otherwise registers
 * it as skipped with the reason in its name (and fails under MEMBRANE_REQUIRE_KERNEL=1).
 */
export function describeKernel(
  name: string,
  features: readonly KernelFeature[],
  fn: () => void,
): void {
  const check = requireKernel(features)
  if (check.ok) describe(name, fn)
  else describe.skip(`${name} [skipped: ${check.reason}]`, fn)
}
