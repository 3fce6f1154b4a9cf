// @membrane/agent: the Membrane reference agent, its API client and the `membrane` CLI.
export type {
  AgentOptions,
  AgentStatus,
  EndpointSpec,
  EndpointView,
  ServiceSpec,
} from './agent'
export { Agent, parseRef } from './agent'
export type { CliIo, FlowLike } from './cli'
export { formatFlowLine, runCli } from './cli'
export { AgentClient, DEFAULT_SOCKET } from './client'
export type { AgentConfig, KvstoreConfig } from './config'
export { defaultConfig, loadConfig, readConfigFile, resolveConfig } from './config'
export type { AgentDaemon } from './daemon'
export { startDaemon } from './daemon'
export { AgentError, AgentErrorCode } from './errors'
export type { Ipv4Prefix } from './ipam'
export { Ipam, parseIpv4Prefix } from './ipam'
export type { EndpointNames } from './names'
export {
  endpointNames,
  hostDeviceName,
  MAX_IFNAME_LENGTH,
  MAX_NAME_LENGTH,
  parseLabelList,
  validateIfname,
  validateLabels,
  validateName,
  validatePrefix,
} from './names'
export type {
  AgentState,
  EndpointRecord,
  PolicyRecord,
  ServiceBackend,
  ServiceRecord,
} from './state'
export { StateStore } from './state'
