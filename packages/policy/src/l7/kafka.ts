/**
 * Kafka L7 rules: the API key table, the rule type, its validation and its matching. This one
 * module decides Kafka verdicts for `PolicyRepository.trace` and for the @membrane/l7proxy
 * Kafka proxy.
 *
 * Semantics (Cilium's `PortRuleKafka` and its request matching):
 * - `role: produce` selects Produce, Metadata and ApiVersions; `role: consume` selects Fetch,
 *   ListOffsets, Metadata, OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat,
 *   LeaveGroup, SyncGroup and ApiVersions; `apiKey` selects one API by Cilium's lower-case name.
 * - `apiVersion` and `clientID`, when given (and not empty), must be equal.
 * - A request is allowed when every topic it names is allowed by some rule that selects it (a
 *   rule without `topic` allows every topic). A request without topics (Heartbeat, JoinGroup,
 *   ...) is allowed by any selecting rule, whatever its topic. A topic-bearing request whose
 *   topics could not be read is allowed only by a selecting rule without `topic`.
 */
import { type Ctx, join, obj, str } from '../internal/fields'
import type { L7Policy } from '../repository'
import { type L7Verdict, NO_RULE_MATCHED, precheck, ruleLists } from './verdict'

/** Kafka API keys by their protocol names (the Apache Kafka protocol guide). */
export const KafkaApi = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  LeaderAndIsr: 4,
  StopReplica: 5,
  UpdateMetadata: 6,
  ControlledShutdown: 7,
  OffsetCommit: 8,
  OffsetFetch: 9,
  FindCoordinator: 10,
  JoinGroup: 11,
  Heartbeat: 12,
  LeaveGroup: 13,
  SyncGroup: 14,
  DescribeGroups: 15,
  ListGroups: 16,
  SaslHandshake: 17,
  ApiVersions: 18,
  CreateTopics: 19,
  DeleteTopics: 20,
  DeleteRecords: 21,
  InitProducerId: 22,
  OffsetForLeaderEpoch: 23,
  AddPartitionsToTxn: 24,
  AddOffsetsToTxn: 25,
  EndTxn: 26,
  WriteTxnMarkers: 27,
  TxnOffsetCommit: 28,
  DescribeAcls: 29,
  CreateAcls: 30,
  DeleteAcls: 31,
  DescribeConfigs: 32,
  AlterConfigs: 33,
} as const

/** Cilium's lower-case name of an API (`offsets` for ListOffsets, else the protocol name). */
const ciliumName = (protocolName: string) =>
  protocolName === 'ListOffsets' ? 'offsets' : protocolName.toLowerCase()

const BY_NAME = new Map<string, number>(
  Object.entries(KafkaApi).map(([k, v]) => [ciliumName(k), v]),
)
const BY_KEY = new Map<number, string>(Object.entries(KafkaApi).map(([k, v]) => [v, ciliumName(k)]))

/** Kafka API keys of the `produce` and `consume` roles (as Cilium defines them). */
export const KAFKA_ROLE_KEYS = {
  produce: [KafkaApi.Produce, KafkaApi.Metadata, KafkaApi.ApiVersions],
  consume: [
    KafkaApi.Fetch,
    KafkaApi.ListOffsets,
    KafkaApi.Metadata,
    KafkaApi.OffsetCommit,
    KafkaApi.OffsetFetch,
    KafkaApi.FindCoordinator,
    KafkaApi.JoinGroup,
    KafkaApi.Heartbeat,
    KafkaApi.LeaveGroup,
    KafkaApi.SyncGroup,
    KafkaApi.ApiVersions,
  ],
} as const satisfies Record<'produce' | 'consume', readonly number[]>

/**
 * The API key of a Cilium API name (any case), or the number itself; undefined when unknown.
 *
 * @example kafkaApiKey('offsets') // 2
 */
export function kafkaApiKey(k: string | number): number | undefined {
  return typeof k === 'number' ? k : BY_NAME.get(k.toLowerCase())
}

/**
 * Cilium's lower-case API name (`produce`, `fetch`, `offsets`...), or the number as text.
 *
 * @example kafkaApiName(2) // 'offsets'
 */
export function kafkaApiName(apiKey: number): string {
  return BY_KEY.get(apiKey) ?? String(apiKey)
}

/** One Kafka L7 rule. */
export interface KafkaRule {
  role?: 'produce' | 'consume'
  /** A Cilium API name, lower case (`produce`, `fetch`, `offsets`, ...). */
  apiKey?: string
  apiVersion?: string
  clientID?: string
  topic?: string
}

/** A Kafka request as trace() and the proxy give it. */
export interface KafkaRequest {
  /** API name (`produce`, `fetch`, ...) or number. */
  apiKey: string | number
  apiVersion?: number
  clientID?: string | null
  /** One topic (shorthand for `topics: [topic]`). */
  topic?: string
  /** The topics the request names (none for Heartbeat, JoinGroup, ...). */
  topics?: readonly string[]
  /** A topic-bearing request whose topics the parser could not read. */
  topicsUnknown?: boolean
}

/** Parse and validate one `kafka[]` rule; `p` is its field path. Internal to the parser. */
export function parseKafkaRule(ctx: Ctx, r: unknown, p: string): KafkaRule {
  const ro = obj(ctx, r, p, ['role', 'apiKey', 'apiVersion', 'clientID', 'topic'])
  const rule: KafkaRule = {}
  const role = str(ctx, ro.role, join(p, 'role'))
  const apiKey = str(ctx, ro.apiKey, join(p, 'apiKey'))
  if (role !== undefined && apiKey !== undefined)
    ctx.fail(
      'INVALID_COMBINATION',
      p,
      'role and apiKey are mutually exclusive',
      'either role or apiKey',
    )
  if (role !== undefined) {
    if (role !== 'produce' && role !== 'consume')
      ctx.fail('INVALID_L7', join(p, 'role'), 'invalid Kafka role', 'produce or consume', role)
    rule.role = role
  }
  if (apiKey !== undefined) {
    if (!BY_NAME.has(apiKey.toLowerCase()))
      ctx.fail(
        'INVALID_L7',
        join(p, 'apiKey'),
        'unknown Kafka apiKey',
        'a Kafka API name such as produce, fetch, metadata',
        apiKey,
      )
    rule.apiKey = apiKey.toLowerCase()
  }
  const apiVersion =
    ro.apiVersion === undefined || ro.apiVersion === null ? undefined : String(ro.apiVersion)
  if (apiVersion !== undefined) {
    if (!/^\d+$/.test(apiVersion) || Number(apiVersion) > 32767)
      ctx.fail(
        'INVALID_L7',
        join(p, 'apiVersion'),
        'invalid Kafka apiVersion',
        'an integer 0..32767',
        ro.apiVersion,
      )
    rule.apiVersion = apiVersion
  }
  const clientID = str(ctx, ro.clientID, join(p, 'clientID'))
  if (clientID !== undefined) rule.clientID = clientID
  const topic = str(ctx, ro.topic, join(p, 'topic'))
  if (topic !== undefined) {
    if (topic.length > 255 || !/^[a-zA-Z0-9._-]+$/.test(topic))
      ctx.fail(
        'INVALID_L7',
        join(p, 'topic'),
        'invalid Kafka topic',
        'at most 255 of [a-zA-Z0-9._-]',
        topic,
      )
    rule.topic = topic
  }
  return rule
}

/**
 * Does the rule select this request's API key, version and client id (topics aside)?
 *
 * @example kafkaRuleSelects({ role: 'produce' }, { apiKey: 'metadata' }) // true
 */
export function kafkaRuleSelects(rule: KafkaRule, req: KafkaRequest): boolean {
  const key = kafkaApiKey(req.apiKey)
  if (key === undefined) return false
  if (rule.role && !(KAFKA_ROLE_KEYS[rule.role] as readonly number[]).includes(key)) return false
  if (rule.apiKey !== undefined && kafkaApiKey(rule.apiKey) !== key) return false
  if (rule.apiVersion !== undefined && Number(rule.apiVersion) !== req.apiVersion) return false
  if (rule.clientID && rule.clientID !== (req.clientID ?? '')) return false
  return true
}

/**
 * Evaluate a request against the L7 policy of its flow (see the module's semantics).
 * `undefined` policy denies (fail closed); a `wildcard` policy allows everything.
 *
 * @example evaluateKafka(policy, { apiKey: 'produce', apiVersion: 7, topics: ['empire-announce'] })
 */
export function evaluateKafka(policy: L7Policy | undefined, req: KafkaRequest): L7Verdict {
  const pre = precheck(policy, 'kafka')
  if (pre) return pre
  const selecting: Array<{ rule: KafkaRule; ruleId: string; index: number }> = []
  for (const r of ruleLists(policy as L7Policy, 'kafka'))
    r.rules.kafka.forEach((rule, index) => {
      if (kafkaRuleSelects(rule, req)) selecting.push({ rule, ruleId: r.id, index })
    })
  const by = (s: (typeof selecting)[number] | undefined): L7Verdict =>
    s ? { allowed: true, ruleId: s.ruleId, index: s.index } : NO_RULE_MATCHED
  if (req.topicsUnknown) return by(selecting.find((s) => s.rule.topic === undefined))
  const topics = req.topics ?? (req.topic === undefined ? [] : [req.topic])
  if (topics.length === 0) return by(selecting[0])
  let first: (typeof selecting)[number] | undefined
  for (const t of topics) {
    // Every topic must be allowed by some selecting rule (Cilium's per-topic matching).
    const s = selecting.find((x) => x.rule.topic === undefined || x.rule.topic === t)
    if (!s) return NO_RULE_MATCHED
    first ??= s
  }
  return by(first)
}
