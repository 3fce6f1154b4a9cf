/**
 * Header lists of the HTTP proxy: the lookup view its rules read (as @membrane/policy's
 * `HttpRequestView.headers` wants it) and the edits of `headerMatches` mismatch actions.
 */
import type { HeaderEdit } from '@membrane/policy'

/** Build the header view of a request from `rawHeaders` (name, value, name, value...). */
export function headerView(rawHeaders: readonly string[]): Map<string, string> {
  const out = new Map<string, string>()
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const k = (rawHeaders[i] as string).toLowerCase()
    const v = rawHeaders[i + 1] as string
    const prev = out.get(k)
    out.set(k, prev === undefined ? v : `${prev}, ${v}`)
  }
  return out
}

/** Apply header edits to name/value pairs (a new array). */
export function applyHeaderEdits(raw: readonly string[], edits: readonly HeaderEdit[]): string[] {
  let out = [...raw]
  for (const e of edits) {
    const lower = e.name.toLowerCase()
    if (e.op === 'add') {
      out.push(e.name, e.value ?? '')
      continue
    }
    const kept: string[] = []
    for (let i = 0; i + 1 < out.length; i += 2)
      if ((out[i] as string).toLowerCase() !== lower)
        kept.push(out[i] as string, out[i + 1] as string)
    if (e.op === 'replace') kept.push(e.name, e.value ?? '')
    out = kept
  }
  return out
}
