import { membranePackage } from '../../tools/tsup.shared'

// shims: import.meta.url in the CJS build (used to find the shipped proto/ directory).
export default membranePackage({ index: 'src/index.ts' }, { shims: true })
