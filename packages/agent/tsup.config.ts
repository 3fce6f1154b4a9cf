import { membranePackage } from '../../tools/tsup.shared'

export default membranePackage({
  index: 'src/index.ts',
  bin: 'src/bin.ts',
  // Loaded by PolicyParser as a worker thread, next to the bundle that starts it.
  'policy-worker': 'src/internal/policy-worker.ts',
})
