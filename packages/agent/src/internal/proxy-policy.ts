/**
 * The proxy process's copy of the agent's policy: a @membrane/policy repository rebuilt from the
 * documents, identities, services and learned names the agent syncs, so that the proxy answers
 * `l7Rules` exactly as the agent's own repository would (same code, same inputs).
 */
import { type L7PolicySource, repositoryPolicySource } from '@membrane/l7proxy'
import { PolicyRepository, parsePolicyObjects } from '@membrane/policy'
import type { PolicySnapshot } from './proxy-protocol'

/**
 * An {@link L7PolicySource} fed by syncs. Until the first sync it knows no endpoint, so every
 * request is denied (the proxy fails closed).
 */
export class ReplicatedPolicy implements L7PolicySource {
  #repo = new PolicyRepository()
  #source: L7PolicySource
  #endpoints = new Map<number, string[]>()
  #parts: PolicySnapshot = { docs: [], identities: [], endpoints: [], services: [], fqdns: [] }
  /** Bumped by every sync (the repository's own generation restarts with each rebuild). */
  #epoch = 0

  constructor() {
    this.#source = this.#sourceOf(this.#repo)
  }

  #sourceOf(repo: PolicyRepository): L7PolicySource {
    return repositoryPolicySource(repo, (id) => {
      const labels = this.#endpoints.get(id)
      return labels ? { labels } : undefined
    })
  }

  rulesFor(query: Parameters<L7PolicySource['rulesFor']>[0]) {
    return this.#source.rulesFor(query)
  }

  get revision(): number {
    return this.#epoch * 2 ** 32 + (this.#source.revision ?? 0)
  }

  /**
   * Apply a sync. Identity and endpoint changes are applied to the repository in place; a change
   * of documents, services or learned names rebuilds it (all or nothing: a sync whose documents
   * do not parse leaves the previous policy in force and throws).
   */
  apply(sync: Partial<PolicySnapshot>): void {
    const next: PolicySnapshot = { ...this.#parts, ...sync }
    if (sync.docs || sync.services || sync.fqdns) {
      const repo = new PolicyRepository()
      repo.updateIdentities(next.identities, [])
      for (const svc of next.services) repo.updateService(svc)
      if (next.docs.length > 0) repo.upsert(parsePolicyObjects(next.docs))
      for (const f of next.fqdns) repo.learnFqdn(f.name, f.ips)
      this.#repo = repo
      this.#source = this.#sourceOf(repo)
    } else if (sync.identities) {
      const now = new Map(sync.identities.map((i) => [i.id, i]))
      const removed = this.#parts.identities.filter((i) => !now.has(i.id)).map((i) => i.id)
      const before = new Map(this.#parts.identities.map((i) => [i.id, JSON.stringify(i)]))
      const added = sync.identities.filter((i) => before.get(i.id) !== JSON.stringify(i))
      this.#repo.updateIdentities(added, removed)
    }
    if (sync.endpoints) this.#endpoints = new Map(sync.endpoints.map((e) => [e.id, e.labels]))
    this.#parts = next
    this.#epoch += 1
  }
}
