import { membranePackage } from '../../tools/tsup.shared'

export default membranePackage()
