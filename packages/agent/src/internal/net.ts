import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { crashPoint } from './crash'
import { run } from './exec'

// Every name reaching this module was validated by names.ts; commands are argument arrays.

/** True when `/run/netns/<name>` exists. */
export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`)
}

/** The names of every network namespace under `/run/netns`. */
export function listNetns(): string[] {
  try {
    return readdirSync('/run/netns')
  } catch {
    return []
  }
}

/** The names of every host interface. */
export function listLinks(): string[] {
  return readdirSync('/sys/class/net')
}

/** True when a host interface of that name exists. */
export function linkExists(ifname: string): boolean {
  return existsSync(`/sys/class/net/${ifname}`)
}

/** True when a host interface exists and is administratively up (IFF_UP). */
export function linkIsUp(ifname: string): boolean {
  try {
    return (Number(readFileSync(`/sys/class/net/${ifname}/flags`, 'utf8').trim()) & 1) === 1
  } catch {
    return false
  }
}

/** The ifindex of a host interface, or undefined when absent. */
export function ifindexOf(ifname: string): number | undefined {
  try {
    return Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8').trim())
  } catch {
    return undefined
  }
}

/** The MAC address of a host interface. */
export function macOf(ifname: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${ifname}/address`, 'utf8').trim()
  } catch {
    return undefined
  }
}

function sysctl(path: string, value: string): void {
  try {
    writeFileSync(path, value)
  } catch {
    // A missing knob (no such interface yet, read-only /proc) is reported by the next ip call.
  }
}

/**
 * Make the agent's host device holding the router address: a veth pair `<prefix>_host` /
 * `<prefix>_net` like Cilium's cilium_host/cilium_net (a veth rather than a dummy device because
 * not every kernel has the dummy module), and turn on forwarding. Idempotent.
 */
export async function ensureHostDevice(ifname: string, routerIp: string): Promise<void> {
  const peer = ifname.replace(/_host$/, '_net')
  if (!linkExists(ifname)) {
    if (linkExists(peer)) await run('ip', ['link', 'del', peer]).catch(() => {})
    await run('ip', ['link', 'add', ifname, 'type', 'veth', 'peer', 'name', peer]).catch(
      (error) => {
        if (!linkExists(ifname)) throw error
      },
    )
  }
  await run('ip', ['link', 'set', peer, 'up'])
  await run('ip', ['addr', 'replace', `${routerIp}/32`, 'dev', ifname])
  await run('ip', ['link', 'set', ifname, 'up'])
  sysctl('/proc/sys/net/ipv4/ip_forward', '1')
}

/** Remove the host device (purge only). */
export async function removeHostDevice(ifname: string): Promise<void> {
  if (ifname && linkExists(ifname)) await run('ip', ['link', 'del', ifname]).catch(() => {})
}

/** What {@link ensureEndpointNetwork} needs. */
export interface EndpointNetwork {
  netns: string
  hostIfname: string
  tmpIfname: string
  podIfname: string
  ip: string
  router: string
  /** MAC of the workload's interface (deterministic, so a repair gets the same one). */
  mac: string
}

const TOKEN = /^[A-Za-z0-9_.:/-]+$/

/**
 * Run several `ip` commands in one process (`ip [-n NS] -batch -`). Each command is an argument
 * array like everywhere else; every token is checked against a strict character set before it is
 * joined into ip's batch syntax, so no input can add words or commands.
 */
async function ipBatch(commands: string[][], netns?: string): Promise<void> {
  if (commands.length === 0) return
  for (const cmd of commands) {
    for (const t of cmd) {
      if (!TOKEN.test(t)) throw new Error(`refusing ip batch token ${JSON.stringify(t)}`)
    }
  }
  const text = `${commands.map((c) => c.join(' ')).join('\n')}\n`
  await run('ip', [...(netns ? ['-n', netns] : []), '-batch', '-'], text)
}

/**
 * Create (or complete) an endpoint's namespace, veth pair, address and routes:
 * in the namespace `ip/32` on eth0, a link route to the router and a default route via it; on
 * the host a /32 route to the endpoint through the veth, sourced from the router address.
 * Every step checks or replaces, so running it twice changes nothing and leaks nothing.
 */
export async function ensureEndpointNetwork(n: EndpointNetwork): Promise<void> {
  const hostUp: string[][] = [
    // IPv4 only: no IPv6 link-local addresses, so no router solicitations or MLD.
    ['link', 'set', n.hostIfname, 'addrgenmode', 'none'],
    ['link', 'set', n.hostIfname, 'up'],
    ['route', 'replace', `${n.ip}/32`, 'dev', n.hostIfname, 'src', n.router],
  ]
  const nsSetup: string[][] = [
    ['link', 'set', n.podIfname, 'addrgenmode', 'none'],
    ['link', 'set', 'lo', 'up'],
    ['addr', 'replace', `${n.ip}/32`, 'dev', n.podIfname],
    ['link', 'set', n.podIfname, 'up'],
    ['route', 'replace', n.router, 'dev', n.podIfname, 'scope', 'link'],
    ['route', 'replace', 'default', 'via', n.router, 'dev', n.podIfname],
  ]
  const makePair = [
    ['link', 'add', n.hostIfname, 'type', 'veth', 'peer', 'name', n.tmpIfname, 'address', n.mac],
    ['link', 'set', n.tmpIfname, 'netns', n.netns],
  ]
  if (!netnsExists(n.netns) && !linkExists(n.hostIfname) && !linkExists(n.tmpIfname)) {
    // The common case, a new endpoint: two processes in all.
    await ipBatch([['netns', 'add', n.netns], ...makePair, ...hostUp])
    crashPoint('namespace-made')
    await ipBatch([['link', 'set', n.tmpIfname, 'name', n.podIfname], ...nsSetup], n.netns)
    sysctl(`/proc/sys/net/ipv4/conf/${n.hostIfname}/rp_filter`, '0')
    return
  }
  // Repair: check each object and make or replace what is missing.
  if (!netnsExists(n.netns)) await run('ip', ['netns', 'add', n.netns])
  const inNs = await run('ip', ['-n', n.netns, '-o', 'link', 'show', 'dev', n.podIfname]).then(
    () => true,
    () => false,
  )
  const nsCommands: string[][] = []
  if (!inNs || !linkExists(n.hostIfname)) {
    // A half-made pair (crash between steps) is removed and made again.
    if (linkExists(n.hostIfname)) await run('ip', ['link', 'del', n.hostIfname])
    if (linkExists(n.tmpIfname)) await run('ip', ['link', 'del', n.tmpIfname])
    if (inNs) await run('ip', ['-n', n.netns, 'link', 'del', n.podIfname])
    await ipBatch(makePair)
    nsCommands.push(['link', 'set', n.tmpIfname, 'name', n.podIfname])
  }
  await ipBatch([...nsCommands, ...nsSetup], n.netns)
  await ipBatch(hostUp)
  sysctl(`/proc/sys/net/ipv4/conf/${n.hostIfname}/rp_filter`, '0')
}

/**
 * A cheap check (no process spawned but one route dump shared by all endpoints) that an
 * endpoint's objects still exist: its namespace, its host veth (up) and its host route.
 */
export function endpointNetworkIntact(
  n: Pick<EndpointNetwork, 'netns' | 'hostIfname' | 'ip'>,
  hostRoutes: ReadonlySet<string>,
): boolean {
  if (!netnsExists(n.netns) || !linkIsUp(n.hostIfname)) return false
  return hostRoutes.has(`${n.ip}/${n.hostIfname}`)
}

/** The host's /32 routes as `ip/dev` strings (one `ip` call). */
export async function hostRoutes(): Promise<Set<string>> {
  const out = await run('ip', ['-j', '-4', 'route', 'show'])
  const routes = JSON.parse(out) as { dst?: string; dev?: string }[]
  return new Set(routes.filter((r) => r.dst && r.dev).map((r) => `${r.dst}/${r.dev}`))
}

/** Delete an endpoint's namespace and veth (the host route goes with the device). Idempotent. */
export async function removeEndpointNetwork(
  n: Pick<EndpointNetwork, 'netns' | 'hostIfname' | 'tmpIfname'>,
): Promise<void> {
  await removeLink(n.hostIfname)
  await removeLink(n.tmpIfname)
  await removeNetns(n.netns)
}

/** Delete a host interface (a veth takes its peer with it). Idempotent. */
export async function removeLink(ifname: string): Promise<void> {
  if (ifname && linkExists(ifname)) await run('ip', ['link', 'del', ifname]).catch(() => {})
}

/** Delete a network namespace (its interfaces go with it). Idempotent. */
export async function removeNetns(name: string): Promise<void> {
  if (name && netnsExists(name)) await run('ip', ['netns', 'del', name])
}

/** Route an existing interface's endpoint address on the host (interface mode). */
export async function ensureInterfaceRoute(ifname: string, ip: string): Promise<void> {
  await run('ip', ['route', 'replace', `${ip}/32`, 'dev', ifname])
}

/** Remove the host route of an interface-mode endpoint. */
export async function removeInterfaceRoute(ifname: string, ip: string): Promise<void> {
  await run('ip', ['route', 'del', `${ip}/32`, 'dev', ifname]).catch(() => {})
}

/** The first IPv4 address on a host interface, if any. */
export async function firstIpv4(ifname: string): Promise<string | undefined> {
  const out = await run('ip', ['-j', '-4', 'addr', 'show', 'dev', ifname])
  const doc = JSON.parse(out) as { addr_info?: { local?: string }[] }[]
  return doc[0]?.addr_info?.[0]?.local
}
