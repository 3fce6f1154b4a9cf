#!/usr/bin/env node
// The `membrane-policy` bin: wires runCli() to the process (the only Node-specific file).
import { readFileSync } from 'node:fs'
import { runCli } from './cli-main'

process.exitCode = runCli(process.argv.slice(2), {
  readFile: (path) => readFileSync(path === '-' ? 0 : path, 'utf8'),
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
})
