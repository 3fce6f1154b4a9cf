import { membranePackage } from '../../tools/tsup.shared'

// shims: the CJS build needs import.meta.url to find build/Release/*.node next to dist/.
export default membranePackage({ index: 'src/index.ts' }, { shims: true })
