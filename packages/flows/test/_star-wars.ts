/**
 * Test helper: the flows of one real examples/star-wars run (datapath and L7 proxy on), recorded
 * from the agent's ring. Step 1 (no policy) both ships land; step 2 (L3/L4) the xwing's SYN is
 * dropped and retransmitted once; step 3 (L7) the tiefighter's POST goes through the proxy and
 * its PUT is denied with 403.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Flow } from '../src/types'

export function starWarsFlows(): Flow[] {
  return readFileSync(join(import.meta.dirname, 'fixtures', 'star-wars-flows.ndjson'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Flow)
}
