/**
 * Upstream sockets of the proxy carry SO_MARK = 0x0A00 | srcIdentity << 16 from their first
 * packet on, so the destination's datapath reads the client's identity and does not redirect
 * the connection to the proxy again.
 */
import { createSocket, type Socket as DgramSocket } from 'node:dgram'
import { type OnReadOpts, Socket, type SocketConstructorOpts } from 'node:net'
import { proxyMark, ReservedIdentity } from '@membrane/types'

/**
 * The mark for a client of `identity`. Identities above 16 bits (CIDR / node-local ones,
 * `1 << 24 | n`) do not fit the mark; truncating them would name some other identity, so such
 * clients are marked as `world` (2), the identity a CIDR identity falls back to. The layout
 * (`identity << 16 | 0x0A00`) is @membrane/types' `proxyMark`.
 */
export function upstreamMarkFor(identity: number): number {
  return proxyMark(
    Number.isInteger(identity) && identity >= 0 && identity <= 0xffff
      ? identity
      : ReservedIdentity.WORLD,
  )
}

/** Sets SO_MARK on a socket; the default uses @membrane/bpf-loader-napi's `setSocketMark`. */
export type SocketMarker = (socket: Socket | DgramSocket, mark: number) => void

let loaderMarker: SocketMarker | undefined

/** The loader's setSocketMark (CAP_NET_ADMIN), loaded on first use. */
export async function defaultSocketMarker(): Promise<SocketMarker> {
  if (!loaderMarker) {
    const loader = await import('@membrane/bpf-loader-napi')
    loaderMarker = (s, mark) => loader.setSocketMark(s, mark)
  }
  return loaderMarker
}

interface HandleWithBind {
  fd?: number
  bind(address: string, port: number): number
  bind6?(address: string, port: number, flags: number): number
}

/**
 * Connect to `host:port` (an IP address) with `mark` set before the SYN leaves. Node has no
 * public hook between socket creation and connect(); the `lookup` callback runs after the TCP
 * handle exists and before connect(), so the handle is bound there (which creates the file
 * descriptor) and marked. `mark` undefined: a plain connection. `onread` (Node's socket
 * option): read into the caller's buffer and hand it to a callback instead of 'data' events.
 */
export function connectMarked(
  host: string,
  port: number,
  mark: number | undefined,
  marker: SocketMarker | undefined,
  onread?: OnReadOpts,
): Socket {
  // Node reads `onread` in the Socket constructor (socket.connect ignores it); @types/node does
  // not list it there.
  const options: SocketConstructorOpts & { onread?: OnReadOpts } = onread ? { onread } : {}
  const socket = new Socket(options)
  if (mark === undefined || !marker) {
    socket.connect({ host, port, noDelay: true })
    return socket
  }
  const v6 = host.includes(':')
  socket.connect({
    host: 'membrane-upstream.invalid',
    port,
    noDelay: true,
    autoSelectFamily: false,
    lookup: (_name, _opts, cb) => {
      const handle = (socket as unknown as { _handle: HandleWithBind | null })._handle
      try {
        if (!handle) throw new Error('no TCP handle before connect')
        const err = v6 ? (handle.bind6?.('::', 0, 0) ?? -1) : handle.bind('0.0.0.0', 0)
        if (err !== 0) throw new Error(`bind failed (${err})`)
        marker(socket, mark)
      } catch (error) {
        ;(cb as (e: Error) => void)(error as Error)
        return
      }
      ;(cb as (e: null, a: string, f: number) => void)(null, host, v6 ? 6 : 4)
    },
  })
  return socket
}

/** A UDP socket bound to an ephemeral port, marked before its first datagram. */
export function bindMarkedUdp(
  family: 'udp4' | 'udp6',
  mark: number | undefined,
  marker: SocketMarker | undefined,
): Promise<DgramSocket> {
  return new Promise((resolve, reject) => {
    const s = createSocket(family)
    s.once('error', reject)
    s.bind(0, () => {
      s.removeListener('error', reject)
      try {
        if (mark !== undefined && marker) marker(s, mark)
      } catch (error) {
        s.close()
        reject(error)
        return
      }
      resolve(s)
    })
  })
}
