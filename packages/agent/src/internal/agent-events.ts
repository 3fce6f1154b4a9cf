/**
 * The agent's changes as Hubble agent events (GetAgentEvents): one builder per kind of change,
 * so the agent publishes the same shapes wherever the change is made.
 */
import { type AgentEvent, AgentEventType } from '@membrane/flows'
import type { IPCacheEvent } from '@membrane/identity'
import type { PolicyRule } from '@membrane/policy'
import type { EndpointRecord, ServiceRecord } from '../state'

/** AGENT_STARTED, now. */
export function agentStartedEvent(nowMs = Date.now()): AgentEvent {
  const seconds = Math.floor(nowMs / 1000)
  return {
    type: AgentEventType.AGENT_STARTED,
    agentStart: { time: { seconds, nanos: (nowMs - seconds * 1000) * 1e6 } },
  }
}

/** ENDPOINT_CREATED / ENDPOINT_DELETED. */
export function endpointEvent(ep: EndpointRecord, created: boolean): AgentEvent {
  return {
    type: created ? AgentEventType.ENDPOINT_CREATED : AgentEventType.ENDPOINT_DELETED,
    endpointUpdate: {
      id: ep.id,
      labels: Object.entries(ep.labels).map(([k, v]) => `k8s:${k}=${v}`),
      podName: ep.name,
      namespace: ep.namespace,
    },
  }
}

/** POLICY_UPDATED / POLICY_DELETED: the rules' labels, the repository revision, the rule count. */
export function policyEvent(
  rules: readonly PolicyRule[],
  revision: number,
  updated: boolean,
): AgentEvent {
  return {
    type: updated ? AgentEventType.POLICY_UPDATED : AgentEventType.POLICY_DELETED,
    policyUpdate: {
      labels: [...new Set(rules.flatMap((r) => r.labels))],
      revision,
      ruleCount: rules.length,
    },
  }
}

/** SERVICE_UPSERTED. */
export function serviceUpsertEvent(svc: ServiceRecord): AgentEvent {
  return {
    type: AgentEventType.SERVICE_UPSERTED,
    serviceUpsert: {
      id: svc.id,
      frontendAddress: { ip: svc.vip, port: svc.port },
      backendAddresses: svc.backends.map((b) => ({ ip: b.address, port: b.port })),
      type: 'ClusterIP',
      name: svc.name,
      namespace: svc.namespace,
    },
  }
}

/** SERVICE_DELETED. */
export function serviceDeleteEvent(svc: ServiceRecord): AgentEvent {
  return { type: AgentEventType.SERVICE_DELETED, serviceDelete: { id: svc.id } }
}

/** IPCACHE_UPSERTED / IPCACHE_DELETED (an identity given to or taken from an address). */
export function ipcacheEvent(e: IPCacheEvent): AgentEvent {
  if (e.type === 'delete') {
    return {
      type: AgentEventType.IPCACHE_DELETED,
      ipcacheUpdate: { cidr: e.prefix.cidr, identity: e.previous.identity },
    }
  }
  return {
    type: AgentEventType.IPCACHE_UPSERTED,
    ipcacheUpdate: {
      cidr: e.prefix.cidr,
      identity: e.entry.identity,
      ...(e.previous ? { oldIdentity: { value: e.previous.identity } } : {}),
      ...(e.entry.tunnelEndpoint ? { hostIp: e.entry.tunnelEndpoint } : {}),
      ...(e.previous?.tunnelEndpoint ? { oldHostIp: e.previous.tunnelEndpoint } : {}),
      ...(e.entry.encryptKey ? { encryptKey: e.entry.encryptKey } : {}),
    },
  }
}
