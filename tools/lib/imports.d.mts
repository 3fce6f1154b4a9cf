// Types of imports.mjs for the TypeScript tests that use it.
export interface ImportRef {
  /** the module specifier as written ('@membrane/x', './y', 'node:fs') */
  specifier: string
  /** the names taken; '*' for a namespace or side-effect import, `export *`, import() or require() */
  names: string[] | '*'
  /** true when nothing is imported at run time */
  typeOnly: boolean
  /** 1-based line of the import */
  line: number
}
export interface WorkspacePackage {
  /** package name ('@membrane/datapath') */
  name: string
  /** absolute directory */
  dir: string
  /** directory relative to the root ('packages/datapath') */
  rel: string
  /** its package.json */
  manifest: Record<string, unknown>
}
export function scanImports(file: string, text?: string): ImportRef[]
export function sourceFiles(dir: string, pattern?: RegExp): string[]
export function workspacePackages(root: string): WorkspacePackage[]
export function packageOf(specifier: string): string | undefined
