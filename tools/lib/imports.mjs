// The workspace's import scanner: which modules a source file imports, and which names it takes
// from each. tools/test/boundaries.test.ts checks the package dependency rules with it; it reads
// the files with the TypeScript parser, so comments and strings that look like imports are not
// imports.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'

/**
 * @typedef {object} ImportRef
 * @property {string} specifier the module specifier as written ('@membrane/x', './y', 'node:fs')
 * @property {string[] | '*'} names the names taken ('*' for a namespace import, a side-effect
 *   import, `export *`, a dynamic import() or require())
 * @property {boolean} typeOnly true when nothing is imported at run time (`import type`, or
 *   every named binding is `type`)
 * @property {number} line 1-based line of the import
 */

/**
 * The imports of one TypeScript or JavaScript file: static imports, re-exports, dynamic
 * `import('...')` and `require('...')` with a string literal.
 * @param {string} file path of the file
 * @param {string} [text] its content (default: read from disk)
 * @returns {ImportRef[]}
 */
export function scanImports(file, text = readFileSync(file, 'utf8')) {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  /** @type {ImportRef[]} */
  const out = []
  const line = (node) => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1
  const visit = (node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause
      /** @type {string[] | '*'} */
      let names = '*'
      let typeOnly = false
      if (clause) {
        typeOnly = clause.isTypeOnly
        const bindings = clause.namedBindings
        if (bindings && ts.isNamedImports(bindings)) {
          names = bindings.elements.map((e) => (e.propertyName ?? e.name).text)
          if (clause.name) names.push('default')
          if (!typeOnly && !clause.name && bindings.elements.length > 0)
            typeOnly = bindings.elements.every((e) => e.isTypeOnly)
        } else if (!bindings && clause.name) names = ['default']
      }
      out.push({ specifier: node.moduleSpecifier.text, names, typeOnly, line: line(node) })
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const clause = node.exportClause
      const names =
        clause && ts.isNamedExports(clause)
          ? clause.elements.map((e) => (e.propertyName ?? e.name).text)
          : '*'
      const typeOnly =
        node.isTypeOnly ||
        (clause !== undefined &&
          ts.isNamedExports(clause) &&
          clause.elements.length > 0 &&
          clause.elements.every((e) => e.isTypeOnly))
      out.push({ specifier: node.moduleSpecifier.text, names, typeOnly, line: line(node) })
    } else if (ts.isCallExpression(node) && node.arguments.length >= 1) {
      const [arg] = node.arguments
      const dynamic = node.expression.kind === ts.SyntaxKind.ImportKeyword
      const req = ts.isIdentifier(node.expression) && node.expression.text === 'require'
      if ((dynamic || req) && arg && ts.isStringLiteralLike(arg))
        out.push({ specifier: arg.text, names: '*', typeOnly: false, line: line(node) })
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument
      if (ts.isLiteralTypeNode(arg) && ts.isStringLiteral(arg.literal))
        out.push({ specifier: arg.literal.text, names: '*', typeOnly: true, line: line(node) })
    }
    ts.forEachChild(node, visit)
  }
  visit(sf)
  return out
}

/**
 * The source files under a directory, recursively (node_modules, dist, build and dot
 * directories skipped).
 * @param {string} dir
 * @param {RegExp} [pattern] file names to keep (default: .ts/.mts/.cts/.mjs/.cjs/.js/.tsx)
 * @returns {string[]} absolute paths, sorted
 */
export function sourceFiles(dir, pattern = /\.(?:[mc]?ts|[mc]?js|tsx)$/) {
  /** @type {string[]} */
  const out = []
  let entries
  try {
    entries = readdirSync(dir)
  } catch {
    return out
  }
  for (const name of entries.sort()) {
    if (name.startsWith('.') || ['node_modules', 'dist', 'build', 'prebuilds'].includes(name))
      continue
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path, pattern))
    else if (pattern.test(name) && !name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

/**
 * @typedef {object} WorkspacePackage
 * @property {string} name package name ('@membrane/datapath')
 * @property {string} dir absolute directory
 * @property {string} rel directory relative to the root ('packages/datapath')
 * @property {Record<string, any>} manifest its package.json
 */

/**
 * The workspace packages under packages/ (the publishable libraries and test-utils).
 * @param {string} root the repository root
 * @returns {WorkspacePackage[]}
 */
export function workspacePackages(root) {
  const base = join(root, 'packages')
  return readdirSync(base)
    .sort()
    .map((name) => join(base, name))
    .filter((dir) => {
      try {
        return statSync(join(dir, 'package.json')).isFile()
      } catch {
        return false
      }
    })
    .map((dir) => {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
      return { name: manifest.name, dir, rel: relative(root, dir), manifest }
    })
}

/**
 * The package a bare specifier names: '@membrane/identity/etcd' -> '@membrane/identity',
 * 'node:fs' -> 'node:fs', 'yaml' -> 'yaml'; undefined for a relative or absolute path.
 * @param {string} specifier
 * @returns {string | undefined}
 */
export function packageOf(specifier) {
  if (specifier.startsWith('.') || specifier.startsWith('/')) return undefined
  if (specifier.startsWith('node:')) return specifier
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]
}
