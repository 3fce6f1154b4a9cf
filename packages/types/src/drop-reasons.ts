/**
 * Drop reasons: the numbers come from bpf-src/lib/drop_reasons.h through the generated table
 * (see tools/gen-drop-reasons.mjs); this file adds the lookups.
 */
import { DropReason } from './drop-reasons.generated'

export { DropReason }

/** A drop reason name (the header's `DROP_<NAME>` without the prefix). */
export type DropReasonName = keyof typeof DropReason

const NAMES = new Map<number, DropReasonName>(
  (Object.entries(DropReason) as [DropReasonName, number][]).map(([k, v]) => [v, k]),
)

/**
 * The name of a drop reason number (`133` or the C return value `-133` -> `'POLICY'`), or
 * undefined when the datapath has no such reason.
 */
export function dropReasonName(reason: number): DropReasonName | undefined {
  return NAMES.get(reason < 0 ? -reason : reason)
}

/** True when the datapath defines drop reason `reason` (positive, as events carry it). */
export function isDropReason(reason: number): boolean {
  return NAMES.has(reason)
}
