/** Render rows as an aligned text table with a header line (what the CLI prints by default). */
export function renderTable(
  headers: string[],
  rows: (string | number | boolean | undefined | null)[][],
): string {
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (c === undefined || c === null ? '' : String(c)))),
  ]
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  return `${cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`
}

/** `a=b,c=d` from a label object. */
export function formatLabels(labels: Record<string, string> | undefined): string {
  return Object.entries(labels ?? {})
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`))
    .join(',')
}
