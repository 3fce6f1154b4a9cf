import { BandwidthManager } from '@membrane/bandwidth/host'
import { Datapath, type EventSubscription } from '@membrane/datapath'

/** The loaded datapath and what hangs off it. */
export interface DatapathParts {
  dp: Datapath
  /** Per-endpoint bandwidth limits in `mb_throttle` (undefined when the manager failed). */
  bandwidth: BandwidthManager | undefined
  bandwidthError: string | undefined
  events: EventSubscription
}

/**
 * Load the datapath (endpoint programs, pinned maps under `pinRoot`) and subscribe to its events.
 * Never throws: a failure is returned as `error` so the agent can run, say so, and not pretend.
 */
export async function openDatapath(options: {
  pinRoot: string
  routerIp4: string
  onEvent: (record: Buffer) => void
}): Promise<{ parts?: DatapathParts; error?: string }> {
  let dp: Datapath
  try {
    dp = await Datapath.open({
      pinRoot: options.pinRoot,
      routerIp4: options.routerIp4,
      events: { traceNew: true, verdicts: true },
    })
  } catch (error) {
    return { error: (error as Error).message }
  }
  const events = dp.events(options.onEvent)
  let bandwidth: BandwidthManager | undefined
  let bandwidthError: string | undefined
  try {
    const { throttle, present } = dp.bandwidthMaps()
    bandwidth = await BandwidthManager.create({ map: throttle, present })
  } catch (error) {
    bandwidthError = (error as Error).message
  }
  return { parts: { dp, bandwidth, bandwidthError, events } }
}
