export type { Figure } from './bench'
export { median, opsPerSecond, percentile, reportFigure, sample } from './bench'
export type { ClusterLabOptions, LabNode } from './cluster'
export { ClusterLab, LAB_VXLAN_IF } from './cluster'
export type { WorkloadNamespace, WorkloadOptions } from './endpoint'
export { WORKLOAD_GATEWAY, workloadNamespace } from './endpoint'
export type { EtcdOptions, EtcdServer } from './etcd'
export { startEtcd } from './etcd'
export type { RunResult } from './exec'
export { CommandError, findCommand, hasCommand, run, runSync } from './exec'
export type { KernelCheck, KernelFeature } from './kernel'
export { describeKernel, kernelRequired, requireKernel } from './kernel'
export {
  DEFAULT_BPFFS,
  DEFAULT_CGROUP2,
  ensureBpffs,
  ensureCgroup2,
  findMount,
  isMounted,
  tempBpffsDir,
  tempCgroup,
} from './mounts'
export { isAlive, ownerPid, TEST_PREFIX, uniqueName } from './names'
export type { NetNamespace, VethOptions, VethPair } from './netns'
export { killAndWait, TestNetwork } from './netns'
export { freePort } from './ports'
export type { SweepReport } from './sweep'
export { sweepLeftovers } from './sweep'
