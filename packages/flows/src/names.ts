/** Names for the numbers in a Flow (enum names as Hubble spells them, and short CLI names). */
import { EventType } from './event'
import {
  type Flow,
  FlowType,
  L7FlowType,
  LostEventSource,
  type TCPFlags,
  TraceObservationPoint,
  TrafficDirection,
  Verdict,
} from './types'

function invert<T extends Record<string, number>>(o: T): Record<number, string> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [v, k]))
}

const VERDICT = invert(Verdict)
const DIRECTION = invert(TrafficDirection)
const POINT = invert(TraceObservationPoint)
const L7TYPE = invert(L7FlowType)
const LOST = invert(LostEventSource)

/** Verdict enum name ('FORWARDED', 'DROPPED', ...). */
export const verdictName = (v: number): string => VERDICT[v] ?? String(v)
/** TrafficDirection enum name. */
export const trafficDirectionName = (v: number): string => DIRECTION[v] ?? String(v)
/** TraceObservationPoint enum name ('TO_ENDPOINT', ...). */
export const observationPointName = (v: number): string => POINT[v] ?? String(v)
/** L7FlowType enum name. */
export const l7TypeName = (v: number): string => L7TYPE[v] ?? String(v)
/** LostEventSource enum name. */
export const lostSourceName = (v: number): string => LOST[v] ?? String(v)

/** 'TO_ENDPOINT' -> 'to-endpoint' (hubble observe spelling). */
export const kebab = (name: string): string => name.toLowerCase().replace(/_/g, '-')

/** Hubble's metric/CLI type name of a flow: Drop, Trace, PolicyVerdict, L7, SockTrace. */
export function eventTypeName(flow: Flow): string {
  if (flow.Type === FlowType.L7) return 'L7'
  switch (flow.eventType?.type) {
    case EventType.DROP:
      return 'Drop'
    case EventType.TRACE:
      return 'Trace'
    case EventType.POLICY_VERDICT:
      return 'PolicyVerdict'
    case EventType.SOCK_LB:
      return 'SockTrace'
    case EventType.ACCESS_LOG:
      return 'L7'
    default:
      return 'Unknown'
  }
}

/**
 * What kind of event a flow is, in words for a person: 'policy verdict (ingress)', 'drop',
 * 'trace (to-endpoint)', 'L7 request', 'L7 response' — so two rows about one packet (a policy
 * verdict and the drop it caused) read apart.
 * @example
 * eventLabel(flow) // 'trace (from-endpoint)'
 */
export function eventLabel(flow: Flow): string {
  switch (eventTypeName(flow)) {
    case 'Drop':
      return 'drop'
    case 'Trace':
      return `trace (${kebab(observationPointName(flow.traceObservationPoint ?? 0))})`
    case 'PolicyVerdict': {
      const dir = flow.trafficDirection
      return dir === TrafficDirection.INGRESS
        ? 'policy verdict (ingress)'
        : dir === TrafficDirection.EGRESS
          ? 'policy verdict (egress)'
          : 'policy verdict'
    }
    case 'L7':
      return flow.l7?.type === L7FlowType.RESPONSE
        ? 'L7 response'
        : flow.l7?.type === L7FlowType.REQUEST
          ? 'L7 request'
          : 'L7 record'
    case 'SockTrace':
      return 'socket translation'
    default:
      return 'unknown event'
  }
}

/** L4 protocol name of a flow (TCP, UDP, SCTP, ICMPv4, ICMPv6) or '' . */
export function l4ProtocolName(flow: Flow): string {
  const l4 = flow.l4
  if (!l4) return ''
  if (l4.TCP) return 'TCP'
  if (l4.UDP) return 'UDP'
  if (l4.SCTP) return 'SCTP'
  if (l4.ICMPv4) return 'ICMPv4'
  if (l4.ICMPv6) return 'ICMPv6'
  return ''
}

/** L7 protocol name (HTTP, Kafka, DNS) or ''. */
export function l7ProtocolName(flow: Flow): string {
  if (flow.l7?.http) return 'HTTP'
  if (flow.l7?.kafka) return 'Kafka'
  if (flow.l7?.dns) return 'DNS'
  return ''
}

const FLAG_ORDER = ['SYN', 'FIN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'] as const

/** 'SYN, ACK' style list of the set TCP flags. */
export function tcpFlagsText(flags: TCPFlags | undefined): string {
  if (!flags) return ''
  return FLAG_ORDER.filter((f) => flags[f]).join(', ')
}
