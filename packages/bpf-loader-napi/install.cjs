#!/usr/bin/env node
// Install script of @membrane/bpf-loader-napi: use the prebuilt addon when it loads here, else
// build from source with node-gyp. npm 11 runs it only once approved:
//   npm install-scripts approve @membrane/bpf-loader-napi && npm rebuild @membrane/bpf-loader-napi
'use strict'
const { spawnSync } = require('node:child_process')
const { existsSync } = require('node:fs')
const { join } = require('node:path')

// Inside the Membrane repository tools/setup.sh builds the addon (tools/native-build.mjs).
if (existsSync(join(__dirname, '..', '..', 'tools', 'native-build.mjs'))) process.exit(0)

const force = process.env.MEMBRANE_BPF_BUILD_FROM_SOURCE === '1'
if (!force && existsSync(join(__dirname, 'dist', 'index.cjs'))) {
  const { addonCandidates } = require('./dist/index.cjs')
  for (const path of addonCandidates()) {
    if (!existsSync(path)) continue
    try {
      require(path)
      process.exit(0)
    } catch {
      // the loader's error at run time says why; try building instead
    }
  }
}

// npm sets npm_config_node_gyp to the node-gyp it bundles.
const gyp = process.env.npm_config_node_gyp
const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']]
process.stdout.write(
  '@membrane/bpf-loader-napi: no prebuilt addon loads here; building from source\n',
)
const r = spawnSync(cmd, args, { cwd: __dirname, stdio: 'inherit' })
if (r.status !== 0) {
  process.stderr.write(
    '@membrane/bpf-loader-napi: building the addon failed. It needs libbpf-dev libelf-dev ' +
      'zlib1g-dev g++ make python3 (Debian/Ubuntu names) and the Node.js headers; then run\n' +
      '  npm rebuild @membrane/bpf-loader-napi\n',
  )
  process.exit(1)
}
