// @membrane/agent: the Membrane reference agent, its API client and the `membrane` CLI.
export type {
  AgentOptions,
  AgentStatus,
  EndpointSpec,
  EndpointView,
  ServiceSpec,
} from './agent'
export { Agent } from './agent'
export type { FlowLike, PolicyLike } from './cli'
export { formatFlowLine } from './cli'
export { AgentClient, DEFAULT_SOCKET } from './client'
export type { AgentConfig, KvstoreConfig, RoutingMode } from './config'
export type { AgentDaemon } from './daemon'
export { startDaemon } from './daemon'
export { AgentError, AgentErrorCode } from './errors'
export type {
  AgentState,
  EndpointRecord,
  PolicyRecord,
  ServiceBackend,
  ServiceRecord,
} from './state'
