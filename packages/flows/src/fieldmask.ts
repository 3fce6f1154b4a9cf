/**
 * GetFlowsRequest.field_mask: only the named paths of each Flow are sent (`source.pod_name`,
 * `l4.TCP.destination_port`, `verdict`). Paths use the .proto field names; a path naming no
 * field of flow.Flow (or going through a repeated or scalar field) is refused by name.
 */
import protobuf from 'protobufjs'
import { FilterError } from './filter'
import { protoRoot } from './proto'
import type { Flow } from './types'

/** A compiled mask: `true` keeps the whole field, an object keeps only its named sub-fields. */
type MaskTree = { [field: string]: MaskTree | true }

/** A compiled field mask: {@link FlowMask.apply} returns the flow with only the masked fields. */
export interface FlowMask {
  readonly paths: readonly string[]
  apply(flow: Flow): Flow
}

function pick(obj: Record<string, unknown>, tree: MaskTree): Record<string, unknown> | undefined {
  let out: Record<string, unknown> | undefined
  for (const [k, sub] of Object.entries(tree)) {
    const v = obj[k]
    if (v === undefined) continue
    const kept = sub === true ? v : pick(v as Record<string, unknown>, sub)
    if (kept === undefined) continue
    out ??= {}
    out[k] = kept
  }
  return out
}

/**
 * Compile the paths of a field mask against flow.Flow. An empty list means "everything" and
 * returns undefined.
 * @throws FilterError naming each invalid path (`fieldMask.paths[1]: ...`).
 */
export function compileFieldMask(paths: readonly string[] | undefined): FlowMask | undefined {
  if (!paths || paths.length === 0) return undefined
  const flowType = protoRoot().lookupType('flow.Flow')
  const tree: MaskTree = {}
  const bad: string[] = []
  paths.forEach((path, i) => {
    let type: protobuf.Type | undefined = flowType
    let node: MaskTree = tree
    const parts = path.split('.')
    for (let j = 0; j < parts.length; j++) {
      const name = protobuf.util.camelCase(parts[j] as string)
      const field: protobuf.Field | undefined = type?.fields[name]
      if (!field) {
        bad.push(`paths[${i}] '${path}': ${type?.name ?? 'a scalar'} has no field '${parts[j]}'`)
        return
      }
      const last = j === parts.length - 1
      if (last) {
        node[name] = true
        return
      }
      field.resolve()
      if (field.repeated || !(field.resolvedType instanceof protobuf.Type)) {
        bad.push(`paths[${i}] '${path}': '${parts[j]}' is not a singular message field`)
        return
      }
      let next = node[name]
      if (next === true) return // a shorter path already keeps the whole field
      if (next === undefined) {
        next = {}
        node[name] = next
      }
      node = next
      type = field.resolvedType
    }
  })
  if (bad.length > 0)
    throw new FilterError('fieldMask', `invalid field mask of flow.Flow: ${bad.join('; ')}`)
  const masked = tree
  return {
    paths: [...paths],
    apply: (flow) =>
      (pick(flow as unknown as Record<string, unknown>, masked) ?? {}) as unknown as Flow,
  }
}
