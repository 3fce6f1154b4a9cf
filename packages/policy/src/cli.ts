#!/usr/bin/env node
// The `membrane-policy` bin: wires runCli() to the process (the only Node-specific file).
import { readFileSync } from 'node:fs'
import { runCli } from './cli-main'

/** This package's version: its package.json is beside src/ and dist/. */
const packageVersion = (): string =>
  (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as Pkg).version
type Pkg = { version: string }

process.exitCode = runCli(process.argv.slice(2), {
  readFile: (path) => readFileSync(path === '-' ? 0 : path, 'utf8'),
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  get version() {
    return packageVersion()
  },
})
