// The npm `bpf` package (the peer). npm does not run its install script here, so build its
// addon from source with node-gyp (under the native-build lock) before the first use; if that
// fails, say why and let the bench report our figures alone.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const root = fileURLToPath(new URL('../../../', import.meta.url))

export interface PeerMap {
  get(key: Buffer): Buffer | undefined
  set(key: Buffer, value: Buffer, flags?: number): unknown
  delete(key: Buffer): boolean
  getBatch(batchSize: number): IterableIterator<Array<[Buffer, Buffer]>>
  setBatch(entries: Array<[Buffer, Buffer]>): unknown
}

export interface Peer {
  version: string
  binary: string
  createHash(
    keySize: number,
    valueSize: number,
    maxEntries: number,
  ): { map: PeerMap; close(): void }
}

export function loadPeer(): Peer | { error: string } {
  let pkgDir: string
  try {
    pkgDir = dirname(require.resolve('bpf/package.json'))
  } catch (error) {
    return { error: `the bpf package is not installed: ${(error as Error).message}` }
  }
  const built = join(pkgDir, 'build', 'Release', 'bpf_binding.node')
  if (!existsSync(built)) {
    process.stderr.write('bench: building the peer (npm bpf) addon from source with node-gyp...\n')
    const r = spawnSync(
      '/usr/bin/flock',
      [
        '/tmp/membrane-native.lock',
        join(root, 'node_modules', '.bin', 'node-gyp'),
        'rebuild',
        '--jobs=max',
        `--nodedir=${dirname(dirname(process.execPath))}`,
      ],
      { cwd: pkgDir, encoding: 'utf8' },
    )
    if (r.status !== 0 || !existsSync(built)) {
      return {
        error: `node-gyp could not build bpf: ${(r.stderr || r.stdout || '').split('\n').slice(-5).join(' ')}`,
      }
    }
  }
  // node-gyp-build prefers build/Release over the shipped prebuilds.
  const bpf = require('bpf') as {
    createMap(def: { type: number; keySize: number; valueSize: number; maxEntries: number }): {
      fd: number
      close(): void
    }
    RawMap: new (ref: unknown) => PeerMap
    MapType: Record<string, number>
    versions?: Record<string, string>
  }
  const version = (require('bpf/package.json') as { version: string }).version
  return {
    version,
    binary: built,
    createHash(keySize, valueSize, maxEntries) {
      const ref = bpf.createMap({ type: bpf.MapType.HASH!, keySize, valueSize, maxEntries })
      return { map: new bpf.RawMap(ref), close: () => ref.close() }
    },
  }
}
