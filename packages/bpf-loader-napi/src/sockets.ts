import type { Socket as DgramSocket } from 'node:dgram'
import type { Server, Socket } from 'node:net'
import { loadAddon } from './_addon'
import { invalid, native } from './errors'

/** Something with a socket file descriptor: a number, or a net.Socket/net.Server/dgram socket. */
export type SocketLike = number | Socket | Server | DgramSocket

function fdOf(s: SocketLike, what: string): number {
  // Node keeps the descriptor on the libuv handle (`_handle.fd`); it has no public accessor.
  const handle = (s as { _handle?: { fd?: unknown } | null } | null)?._handle
  const fd = typeof s === 'number' ? s : handle?.fd
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0)
    throw invalid(
      `${what} socket`,
      'a socket file descriptor (a non-negative integer) or a connected/bound Node socket',
      s,
    )
  return fd
}

/**
 * Sets SO_MARK on a socket (needs CAP_NET_ADMIN). Packets it sends carry the mark, so policy
 * routing and BPF programs (skb->mark) can tell proxy traffic apart.
 */
export function setSocketMark(socket: SocketLike, mark: number): void {
  const fd = fdOf(socket, 'setSocketMark')
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff)
    throw invalid('setSocketMark mark', 'an integer in [0, 2^32)', mark)
  native(() => loadAddon().setSocketMark(fd, mark), `setSocketMark(fd ${fd})`)
}

/** Reads SO_MARK. */
export function getSocketMark(socket: SocketLike): number {
  const fd = fdOf(socket, 'getSocketMark')
  return native(() => loadAddon().getSocketMark(fd), `getSocketMark(fd ${fd})`)
}

/**
 * The socket's cookie (SO_COOKIE): the 64-bit id BPF programs see via bpf_get_socket_cookie(),
 * so user space and the datapath can name the same socket.
 */
export function getSocketCookie(socket: SocketLike): bigint {
  const fd = fdOf(socket, 'getSocketCookie')
  return native(() => loadAddon().getSocketCookie(fd), `getSocketCookie(fd ${fd})`)
}

/**
 * Sets IP_TRANSPARENT (or IPV6_TRANSPARENT on an AF_INET6 socket) so a listener accepts
 * connections to foreign addresses (TPROXY / sk_assign redirection). Needs CAP_NET_ADMIN.
 * Set it before bind() on listeners.
 */
export function setIpTransparent(socket: SocketLike, options: { ipv6?: boolean } = {}): void {
  const fd = fdOf(socket, 'setIpTransparent')
  const addon = loadAddon()
  const v6 = options.ipv6 ?? native(() => addon.socketDomain(fd)) === 10
  native(() => addon.setIpTransparent(fd, v6), `setIpTransparent(fd ${fd})`)
}

/** Whether IP_TRANSPARENT (IPV6_TRANSPARENT on AF_INET6) is set on the socket. */
export function getIpTransparent(socket: SocketLike, options: { ipv6?: boolean } = {}): boolean {
  const fd = fdOf(socket, 'getIpTransparent')
  const addon = loadAddon()
  const v6 = options.ipv6 ?? native(() => addon.socketDomain(fd)) === 10
  return native(() => addon.getIpTransparent(fd, v6), `getIpTransparent(fd ${fd})`)
}
