// @membrane/bandwidth/host: the host side of bandwidth enforcement — sch_fq probing, fq setup
// on egress devices, and the BandwidthManager that writes the throttle map. Runs `ip`/`tc`
// (argument arrays, never a shell) and needs root.
export type { EgressQdiscOptions, FqSupport } from './fq'
export {
  applyEgressQdisc,
  checkIfname,
  checkNetnsName,
  planEgressQdisc,
  probeSchFq,
  txQueueCount,
} from './fq'
export type {
  BandwidthManagerOptions,
  BandwidthMode,
  BandwidthStatus,
  EndpointLimits,
  ThrottleMapLike,
} from './manager'
export { BANDWIDTH_MODE, BandwidthManager } from './manager'
