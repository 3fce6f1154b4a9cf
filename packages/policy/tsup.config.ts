import { membranePackage } from '../../tools/tsup.shared'

export default membranePackage({ index: 'src/index.ts', cli: 'src/cli.ts' })
