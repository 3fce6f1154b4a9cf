import { membranePackage } from '../../tools/tsup.shared'

export default membranePackage({
  index: 'src/index.ts',
  bin: 'src/bin.ts',
  // The L7 proxy process the agent spawns (it outlives the agent).
  'l7proxy-main': 'src/internal/proxy-main.ts',
  // Loaded by PolicyParser as a worker thread, next to the bundle that starts it.
  'policy-worker': 'src/internal/policy-worker.ts',
})
