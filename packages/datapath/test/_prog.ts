/**
 * Helpers shared by the BPF_PROG_TEST_RUN tests of the IPv4 endpoint programs: run one packet
 * through a program, build a TCP packet spec, read drop counters, wait for ring-buffer events.
 * Each test file keeps its own Datapath setup (options and what is reset differ).
 */
import {
  buildPacket,
  type Datapath,
  type PacketSpec,
  type ParsedPacket,
  parsePacket,
  skbContext,
  TcpFlags,
} from '../src'
import type { RawEvent } from './_event'

/** skb fields a test may set: a mark (a number means the mark) and/or the ifindex. */
export type RunContext = number | { mark?: number; ifindex?: number }

export function progHelpers(dp: () => Datapath, events: RawEvent[]) {
  /** One packet through a program: its verdict and the packet as it left. */
  const run = async (
    prog: 'from_container' | 'to_container',
    spec: PacketSpec,
    ctx: RunContext = {},
  ): Promise<{ retval: number; pkt: ParsedPacket }> => {
    const c = typeof ctx === 'number' ? { mark: ctx } : ctx
    const r = await dp()
      .program(prog)
      .testRun({
        data: buildPacket(spec),
        ...(c.mark !== undefined || c.ifindex !== undefined ? { ctxIn: skbContext(c) } : {}),
      })
    return { retval: r.retval, pkt: parsePacket(r.data) }
  }
  const tcp = (
    saddr: string,
    sport: number,
    daddr: string,
    dport: number,
    flags: number = TcpFlags.SYN,
  ): PacketSpec => ({ saddr, daddr, sport, dport, protocol: 'TCP', tcpFlags: flags })
  const drops = (reason: number, dir: 'ingress' | 'egress') => dp().metrics.packets(reason, dir)
  /** The events matching `pred`, after waiting up to 0.5 s for the first. */
  const waitEvents = async (pred: (e: RawEvent) => boolean) => {
    for (let i = 0; i < 50 && !events.some(pred); i++) await new Promise((r) => setTimeout(r, 10))
    return events.filter(pred)
  }
  return { run, tcp, drops, waitEvents }
}
