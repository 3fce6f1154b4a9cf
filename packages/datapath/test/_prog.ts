/**
 * Helpers shared by the BPF_PROG_TEST_RUN tests of the endpoint programs: run one packet
 * through a program (IPv4 or IPv6), build a TCP packet spec, read drop counters, wait for
 * ring-buffer events, predict a Maglev service's backend with @membrane/maglev. Each test file
 * keeps its own Datapath setup (options and what is reset differ).
 */
import { buildLookupTable, flowHash } from '@membrane/maglev'
import { type Datapath, MAGLEV_TABLE_SIZE, type ServiceState } from '../src/index'
import {
  buildPacket,
  buildPacket6,
  type PacketSpec,
  type PacketSpec6,
  type ParsedPacket,
  parsePacket,
  parsePacket6,
  skbContext,
  TcpFlags,
} from '../src/testing'
import type { RawEvent } from './_event'

/** skb fields a test may set: a mark (a number means the mark) and/or the ifindex. */
export type RunContext = number | { mark?: number; ifindex?: number }

/** A runner: one packet through a program, its verdict and the packet as it left. */
function runner<Spec, Parsed>(
  dp: () => Datapath,
  build: (spec: Spec) => Buffer,
  parse: (frame: Buffer) => Parsed,
) {
  return async (
    prog: 'from_container' | 'to_container',
    spec: Spec,
    ctx: RunContext = {},
  ): Promise<{ retval: number; pkt: Parsed }> => {
    const c = typeof ctx === 'number' ? { mark: ctx } : ctx
    const r = await dp()
      .program(prog)
      .testRun({
        data: build(spec),
        ...(c.mark !== undefined || c.ifindex !== undefined ? { ctxIn: skbContext(c) } : {}),
      })
    return { retval: r.retval, pkt: parse(r.data) }
  }
}

/** A TCP packet spec (SYN unless told) for either family's builder. */
const tcpSpec = (
  saddr: string,
  sport: number,
  daddr: string,
  dport: number,
  flags: number = TcpFlags.SYN,
) => ({ saddr, daddr, sport, dport, protocol: 'TCP' as const, tcpFlags: flags })

export function progHelpers(dp: () => Datapath, events: RawEvent[]) {
  const run = runner<PacketSpec, ParsedPacket>(dp, buildPacket, parsePacket)
  const tcp: (...a: Parameters<typeof tcpSpec>) => PacketSpec = tcpSpec
  const drops = (reason: number, dir: 'ingress' | 'egress') => dp().metrics.packets(reason, dir)
  /** The events matching `pred`, after waiting up to 0.5 s for the first. */
  const waitEvents = async (pred: (e: RawEvent) => boolean) => {
    for (let i = 0; i < 50 && !events.some(pred); i++) await new Promise((r) => setTimeout(r, 10))
    return events.filter(pred)
  }
  return { run, tcp, drops, waitEvents }
}

/** The IPv6 counterparts of {@link progHelpers}' `run` and `tcp`. */
export function progHelpers6(dp: () => Datapath) {
  const run = runner(dp, buildPacket6, parsePacket6)
  const tcp: (...a: Parameters<typeof tcpSpec>) => PacketSpec6 = tcpSpec
  return { run, tcp }
}

/**
 * The backend address @membrane/maglev predicts for a TCP flow to a Maglev service (its own
 * table and flow hash, independent of what the datapath wrote).
 */
export function maglevPredictor(svc: ServiceState) {
  const table = buildLookupTable(
    svc.backends.map((b) => ({
      id: b.id,
      address: b.address,
      port: b.port,
      protocol: 'TCP' as const,
    })),
    { tableSize: MAGLEV_TABLE_SIZE },
  )
  const byId = new Map(svc.backends.map((b) => [b.id, b.address]))
  return (saddr: string, sport: number, dport: number) =>
    byId.get(
      table[flowHash({ saddr, sport, dport, protocol: 'TCP' }) % MAGLEV_TABLE_SIZE] as number,
    )
}
