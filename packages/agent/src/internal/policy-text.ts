import {
  loadPolicyObjects,
  type PolicyDocument,
  PolicyError,
  type PolicyLoadLimits,
  parsePolicyObjects,
} from '@membrane/policy'
import { AgentError, invalid } from '../errors'

/** What the agent accepts in one import: no more than its API body, nesting as real policies. */
const POLICY_TEXT_LIMITS: Required<PolicyLoadLimits> = {
  maxLength: 4 * 1024 * 1024,
  maxDepth: 64,
  maxAliasCount: 100,
}

/**
 * Parse policy text (YAML or JSON, one or many documents) into plain objects and documents.
 * Bad text, and text over {@link POLICY_TEXT_LIMITS} (too long, nested too deep, an alias
 * bomb), is INVALID_INPUT naming `source`. Runs in the policy worker (see PolicyParser), never on the API's event loop.
 */
export function parsePolicyText(
  text: unknown,
  source = 'policy',
): { objects: unknown[]; docs: PolicyDocument[] } {
  if (typeof text !== 'string' || text.trim() === '') {
    throw invalid('text', `expected the policy document text of ${source}`)
  }
  try {
    const objects = loadPolicyObjects(text, POLICY_TEXT_LIMITS)
    if (objects.length === 0) throw invalid(source, 'no policy document found')
    return { objects, docs: parsePolicyObjects(objects) }
  } catch (error) {
    if (error instanceof PolicyError) {
      throw new AgentError('INVALID_INPUT', `${source}: ${error.message}`, {
        field: error.path ?? source,
        cause: error,
      })
    }
    throw error
  }
}

/**
 * Parse the documents of the state directory. Agents before label values had to be strings
 * saved `app: 1` as a number; those values are read as the strings they were applied as.
 */
export function parseSavedPolicies(documents: unknown[]): PolicyDocument[] {
  return parsePolicyObjects(documents.map(quoteMatchLabels))
}

function quoteMatchLabels(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(quoteMatchLabels)
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    if (k === 'matchLabels' && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      out[k] = Object.fromEntries(
        Object.entries(v).map(([lk, lv]) => [
          lk,
          typeof lv === 'number' || typeof lv === 'boolean' ? String(lv) : lv,
        ]),
      )
    } else out[k] = quoteMatchLabels(v)
  }
  return out
}
