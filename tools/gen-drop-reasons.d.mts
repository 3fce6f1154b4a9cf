/** Path of bpf-src/lib/drop_reasons.h. */
export const HEADER: string
/** Path of packages/types/src/drop-reasons.generated.ts. */
export const OUTPUT: string
/** The `[name, positive number, comment]` triples of a drop_reasons.h text, in header order. */
export function parseDropReasons(text: string): [string, number, string][]
/** The TypeScript source generated from a drop_reasons.h text. */
export function renderDropReasons(text: string): string
