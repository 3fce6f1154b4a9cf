#!/usr/bin/env node
// The `membrane` command. It runs the CLI in this process, never in a child: the pid a user,
// a shell or systemd sees is the agent, so SIGTERM, SIGINT and SIGKILL reach it (a wrapper that
// spawned the CLI left the agent serving, re-parented to init, after a `kill -9`).
//
// An installed package (only dist/ and bin/ are published) runs the built CLI. Inside the
// workspace (the TypeScript source is there) it runs the source, so it never depends on stale or
// missing builds of the sibling packages: tsx's loader and a resolve hook adding the
// `@membrane/source` export condition are registered here, in-process, instead of being passed
// as node flags to a child.
import { existsSync } from 'node:fs'
import { register } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const source = join(here, '..', 'src', 'bin.ts')
if (existsSync(source)) {
  // A resolve hook as a data: URL (kept in a variable: it is code, not a module to install).
  const sourceCondition =
    'data:text/javascript,export function resolve(s,c,next){return next(s,{...c,conditions:[...c.conditions,"@membrane/source"]})}'
  register(sourceCondition)
  await import('tsx')
  await import(pathToFileURL(source).href)
} else {
  await import(pathToFileURL(join(here, '..', 'dist', 'bin.js')).href)
}
