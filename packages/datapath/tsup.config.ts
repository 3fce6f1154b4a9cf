import { membranePackage } from '../../tools/tsup.shared'

export default membranePackage({ index: 'src/index.ts', testing: 'src/testing.ts' })
