import { membranePackage } from '../../tools/tsup.shared'

// shims: the CJS build loads the optional etcd3 peer through createRequire(import.meta.url).
export default membranePackage({ index: 'src/index.ts', etcd: 'src/etcd.ts' }, { shims: true })
