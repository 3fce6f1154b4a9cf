// @membrane/policy: compile CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and Kubernetes
// NetworkPolicy into per-endpoint policy map state, and explain verdicts.

// Re-exported for the users who import it from here; its home is @membrane/types.
export { ReservedIdentity } from '@membrane/types'
export {
  l7Attribution,
  policiesOfDerivedFrom,
  RuleSetTable,
  type RuleSetTableOptions,
} from './attribution'
export type {
  ComputeOptions,
  DirectionEvaluation,
  EndpointInfo,
  RuleMatch,
  RuleMiss,
} from './compile'
export { PolicyError, PolicyErrorCode, type PolicyErrorDetails, PolicyParseError } from './errors'
export type {
  IdentityData,
  NamedPort,
  ReservedName,
  ServiceInfo,
} from './identity'
// L7 rules: one module per rule kind owns the rule type, its validation and its matching;
// trace() and @membrane/l7proxy use the same evaluators.
export {
  type DnsQuery,
  type DnsRule,
  dnsRuleMatches,
  evaluateDns,
  matchDnsPattern,
  matchFqdn,
  normalizeDnsName,
} from './l7/dns'
export {
  evaluateHttp,
  type HeaderEdit,
  type HeaderMatch,
  type HeaderRequirement,
  type HttpRequest,
  type HttpRequestView,
  type HttpRule,
  type HttpVerdict,
  headerEdits,
  httpRequestView,
  httpRuleMatches,
  parseHeaderEntry,
  parseRequestHeaderLines,
} from './l7/http'
export {
  evaluateKafka,
  KAFKA_ROLE_KEYS,
  KafkaApi,
  type KafkaRequest,
  type KafkaRule,
  kafkaApiKey,
  kafkaApiName,
  kafkaRuleSelects,
} from './l7/kafka'
export type { L7DenyReason, L7Verdict } from './l7/verdict'
export type { PolicyLoadLimits } from './load'
export { loadPolicyObjects } from './load'
export {
  applyMapStateDiff,
  diffMapState,
  type LookupOrder,
  lookupMapState,
  MapState,
  type MapStateDiff,
  type MapStateEntry,
  type MapStateKey,
  type MapStateQuery,
  type MapStateValue,
  mapStateVerdict,
} from './mapstate'
export type {
  Direction,
  Entity,
  L4Rule,
  L7Parser,
  L7Rules,
  Peer,
  PeerRule,
  PolicyDocument,
  PolicyKind,
  PolicyRule,
  PortSpec,
} from './model'
export {
  AUDIT_ANNOTATION,
  parsePolicyDocuments,
  parsePolicyObjects,
  revivePolicyDocuments,
  validatePolicyDocuments,
} from './parse'
export {
  type PortPrefix,
  Protocol,
  portRangeToPrefixes,
} from './ports'
export { compileRe2, type Re2Pattern, Re2SyntaxError } from './re2'
export {
  type DirectionTrace,
  type FqdnLearnResult,
  type L7Policy,
  type L7Trace,
  type PolicyRef,
  PolicyRepository,
  type RepositoryOptions,
  type TraceEndpoint,
  type TraceInput,
  type TraceResult,
  TrackedEndpointPolicy,
  traceEndpointLabels,
} from './repository'
export type { SelectionChange, SelectorCache } from './selector-cache'
