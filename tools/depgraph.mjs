#!/usr/bin/env node
// The package dependency graph of docs/ARCHITECTURE.md, generated from the package manifests.
//
//   node tools/depgraph.mjs            # rewrite the graph between the markers of the doc
//   node tools/depgraph.mjs --check    # exit 1 when the doc's graph differs from the manifests
//   node tools/depgraph.mjs --print    # print the graph, touch nothing
//   node tools/depgraph.mjs --root DIR # another workspace (DIR/packages/*, DIR/docs/ARCHITECTURE.md)
//
// Edges are the `@membrane/*` entries of each packages/*/package.json "dependencies" and
// "peerDependencies" (a peer listed in "peerDependenciesMeta" as optional is marked so).
// devDependencies are not edges: they do not ship. A package's layer is 0 when it depends on no
// sibling, else one more than the highest layer it depends on, so every arrow points down.
// The graph is a plain-text block: it reads the same in a terminal and on GitHub.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

export const BEGIN = '<!-- depgraph:begin -->'
export const END = '<!-- depgraph:end -->'
const SCOPE = '@membrane/'

/** Reads DIR/packages/(name)/package.json, sorted by directory name. */
export function readManifests(root) {
  const dir = join(root, 'packages')
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'package.json')))
    .map((d) => d.name)
    .sort()
    .map((name) => JSON.parse(readFileSync(join(dir, name, 'package.json'), 'utf8')))
}

/**
 * The graph of the manifests: `Map<name, { private, edges: { to, kind, optional }[] }>`, names
 * without the `@membrane/` scope. An edge to a package that is not in the workspace is an error,
 * as is a cycle.
 */
export function buildGraph(manifests) {
  const graph = new Map()
  for (const m of manifests) {
    if (typeof m.name !== 'string' || !m.name.startsWith(SCOPE))
      throw new Error(`depgraph: package name ${JSON.stringify(m.name)} is not ${SCOPE}*`)
    const edges = []
    const add = (deps, kind) => {
      for (const dep of Object.keys(deps ?? {}).sort()) {
        if (!dep.startsWith(SCOPE)) continue
        const optional = kind === 'peer' && m.peerDependenciesMeta?.[dep]?.optional === true
        edges.push({ to: dep.slice(SCOPE.length), kind, optional })
      }
    }
    add(m.dependencies, 'dependency')
    add(m.peerDependencies, 'peer')
    graph.set(m.name.slice(SCOPE.length), { private: m.private === true, edges })
  }
  for (const [name, node] of graph)
    for (const e of node.edges)
      if (!graph.has(e.to))
        throw new Error(`depgraph: ${SCOPE}${name} depends on ${SCOPE}${e.to}, not in packages/`)
  layers(graph)
  return graph
}

/** `Map<name, layer>`: 0 for a package with no sibling dependency, else 1 + its deepest one. */
export function layers(graph) {
  const layer = new Map()
  const visiting = []
  const visit = (name) => {
    if (layer.has(name)) return layer.get(name)
    if (visiting.includes(name))
      throw new Error(
        `depgraph: dependency cycle ${[...visiting.slice(visiting.indexOf(name)), name].join(' -> ')}`,
      )
    visiting.push(name)
    let l = 0
    for (const e of graph.get(name).edges) l = Math.max(l, visit(e.to) + 1)
    visiting.pop()
    layer.set(name, l)
    return l
  }
  for (const name of [...graph.keys()].sort()) visit(name)
  return layer
}

/** The graph as lines of text, highest layer first. */
export function render(graph) {
  const layer = layers(graph)
  const width = Math.max(...[...graph.keys()].map((n) => n.length))
  const top = Math.max(...layer.values())
  const lines = [
    `${SCOPE}<name>; "a -> b" means a depends on b at run time (dependencies + peers)`,
    '',
  ]
  for (let l = top; l >= 0; l--) {
    const names = [...graph.keys()].filter((n) => layer.get(n) === l).sort()
    names.forEach((name, i) => {
      const node = graph.get(name)
      const head = `${i === 0 ? `layer ${l}` : ''}`.padEnd(9) + name.padEnd(width + 1)
      const deps = node.edges.map((e) =>
        e.kind === 'peer' ? `${e.to} (${e.optional ? 'optional peer' : 'peer'})` : e.to,
      )
      const tail = deps.length > 0 ? `-> ${deps.join(', ')}` : '(no @membrane dependency)'
      lines.push(`${head}${tail}${node.private ? '  [private]' : ''}`.trimEnd())
    })
  }
  return `${lines.join('\n')}\n`
}

/** The doc's text with `graph` between the markers (a fenced text block). */
export function splice(doc, graph, file = 'the doc') {
  const b = doc.indexOf(BEGIN)
  const e = doc.indexOf(END)
  if (b < 0 || e < b) throw new Error(`depgraph: ${file} has no ${BEGIN} ... ${END} markers`)
  const block = `${BEGIN}\n\`\`\`text\n${render(graph)}\`\`\`\n${END}`
  return doc.slice(0, b) + block + doc.slice(e + END.length)
}

function main(argv) {
  const args = argv.slice(2)
  let root = fileURLToPath(new URL('..', import.meta.url))
  const ri = args.indexOf('--root')
  if (ri >= 0) {
    if (!args[ri + 1]) throw new Error('depgraph: --root needs a directory')
    root = args[ri + 1]
  }
  const graph = buildGraph(readManifests(root))
  if (args.includes('--print')) {
    process.stdout.write(render(graph))
    return 0
  }
  const file = join(root, 'docs', 'ARCHITECTURE.md')
  const name = relative(process.cwd(), file) || file
  const doc = readFileSync(file, 'utf8')
  const next = splice(doc, graph, name)
  if (args.includes('--check')) {
    if (next === doc) return 0
    process.stderr.write(
      `${name}: the dependency graph is out of date with packages/*/package.json; ` +
        'run `npm run docs:graph`\n',
    )
    return 1
  }
  if (next !== doc) writeFileSync(file, next)
  process.stdout.write(`${name}: dependency graph ${next === doc ? 'up to date' : 'written'}\n`)
  return 0
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.exitCode = main(process.argv)
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : err}\n`)
    process.exitCode = 2
  }
}
