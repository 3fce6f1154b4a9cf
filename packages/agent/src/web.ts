import type { Agent } from './agent'

/** Routes of the TCP listener: metrics and the web UI (read-only). */
export function webRoutes(agent: Agent) {
  const route = (
    method: string,
    path: string,
    handler: (ctx: { res: import('node:http').ServerResponse }) => unknown,
  ) => ({
    method,
    pattern: new RegExp(`^${path}$`),
    handler,
  })
  return [route('GET', '/healthz', () => ({ ok: agent.running }))]
}
