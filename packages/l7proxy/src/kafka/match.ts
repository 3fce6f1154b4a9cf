/**
 * Kafka rule evaluation, as Cilium does it: `role` (produce/consume) or `apiKey` selects API
 * keys, `apiVersion` and `clientID` must be equal when given, and every topic of a
 * topic-bearing request must be allowed by a rule (requests without topics — Heartbeat,
 * JoinGroup, ... — pass a rule whose API keys include them, whatever its topic).
 */
import { KAFKA_ROLE_KEYS, type KafkaRule, kafkaApiKey, type L7Policy } from '@membrane/policy'
import { type KafkaRequestInfo, TOPIC_APIS } from './wire'

/** Does the rule select this request's API key, version and client id (topic aside)? */
export function kafkaRuleSelects(
  rule: KafkaRule,
  req: Pick<KafkaRequestInfo, 'apiKey' | 'apiVersion' | 'clientId'>,
): boolean {
  if (rule.role && !(KAFKA_ROLE_KEYS[rule.role] as readonly number[]).includes(req.apiKey))
    return false
  if (rule.apiKey !== undefined && kafkaApiKey(rule.apiKey) !== req.apiKey) return false
  if (rule.apiVersion !== undefined && Number(rule.apiVersion) !== req.apiVersion) return false
  if (rule.clientID !== undefined && rule.clientID !== (req.clientId ?? '')) return false
  return true
}

/** Is the request allowed by the L7 policy of its flow? `undefined` policy denies. */
export function evaluateKafka(
  policy: L7Policy | undefined,
  req: Pick<KafkaRequestInfo, 'apiKey' | 'apiVersion' | 'clientId' | 'topics' | 'topicsParsed'>,
): boolean {
  if (policy?.parser !== 'kafka') return false
  if (policy.wildcard) return true
  const rules: KafkaRule[] = []
  for (const r of policy.rules) if (r.rules.parser === 'kafka') rules.push(...r.rules.kafka)
  const selecting = rules.filter((r) => kafkaRuleSelects(r, req))
  if (selecting.length === 0) return false
  if (TOPIC_APIS.has(req.apiKey) && !req.topicsParsed)
    return selecting.some((r) => r.topic === undefined)
  if (req.topics.length === 0) return true
  return req.topics.every((t) => selecting.some((r) => r.topic === undefined || r.topic === t))
}
