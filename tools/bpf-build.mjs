#!/usr/bin/env node
// Compile bpf-src/ into BPF ELF objects with clang-19.
//
//   node tools/bpf-build.mjs [--src bpf-src] [--out bpf-src/build] [--force] [--quiet]
//
// - vmlinux.h is generated into the output dir from /sys/kernel/btf/vmlinux (bpftool), and
//   regenerated only when the kernel's BTF changes.
// - Every `<src>/*.c` (one per attach point) and `<src>/tests/*.c` (BPF unit-test objects)
//   becomes `<out>/<name>.o` / `<out>/tests/<name>.o`. Objects are rebuilt only when the source,
//   a header it includes (clang -MD depfile), the flags or vmlinux.h changed.
// - A compile error prints clang's own message and exits 1; no stack trace.
import { execFile, execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { availableParallelism } from 'node:os'
import { basename, dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function parseArgs(argv) {
  const opts = { src: join(root, 'bpf-src'), out: undefined, force: false, quiet: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--src') opts.src = resolve(argv[++i] ?? fail('--src needs a directory'))
    else if (a === '--out') opts.out = resolve(argv[++i] ?? fail('--out needs a directory'))
    else if (a === '--force') opts.force = true
    else if (a === '--quiet') opts.quiet = true
    else fail(`unknown argument ${a}`)
  }
  opts.out ??= join(opts.src, 'build')
  return opts
}

function fail(message) {
  process.stderr.write(`bpf-build: ${message}\n`)
  process.exit(1)
}

const CLANG = process.env.MEMBRANE_CLANG ?? 'clang-19'
const BTF = '/sys/kernel/btf/vmlinux'

function which(bin) {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (dir && existsSync(join(dir, bin))) return join(dir, bin)
  }
  return undefined
}

function sha256(data) {
  return createHash('sha256').update(data).digest('hex')
}

function ensureVmlinux(out, log) {
  const header = join(out, 'vmlinux.h')
  const stampFile = join(out, 'vmlinux.h.sha256')
  if (!existsSync(BTF))
    fail(`${BTF} is missing: this kernel has no BTF, vmlinux.h cannot be generated`)
  const stamp = sha256(readFileSync(BTF))
  if (existsSync(header) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp)
    return false
  const bpftool = which('bpftool')
  if (!bpftool) fail('bpftool is not installed (Debian package bpftool; run tools/setup.sh)')
  let text
  try {
    text = execFileSync(bpftool, ['btf', 'dump', 'file', BTF, 'format', 'c'], {
      maxBuffer: 256 * 1024 * 1024,
      encoding: 'utf8',
    })
  } catch (error) {
    fail(`bpftool could not dump ${BTF}: ${String(error.stderr ?? error.message).trim()}`)
  }
  writeFileSync(`${header}.tmp`, text)
  renameSync(`${header}.tmp`, header)
  writeFileSync(stampFile, stamp)
  log(`generated ${relative(process.cwd(), header)} from ${BTF}`)
  return true
}

function sources(src) {
  const list = []
  const add = (dir, sub) => {
    if (!existsSync(dir)) return
    for (const f of readdirSync(dir).sort())
      if (f.endsWith('.c')) list.push({ file: join(dir, f), sub })
  }
  add(src, '')
  add(join(src, 'tests'), 'tests')
  return list
}

/** Files an object depends on, from clang's depfile (make syntax). */
function depsOf(depfile) {
  if (!existsSync(depfile)) return undefined
  const text = readFileSync(depfile, 'utf8').replace(/\\\n/g, ' ')
  const colon = text.indexOf(': ')
  if (colon < 0) return undefined
  return text
    .slice(colon + 2)
    .split(/\s+/)
    .filter(Boolean)
    .map((p) => p.replace(/\\ /g, ' '))
}

function upToDate(obj, depfile, flagsStamp, vmlinux) {
  if (!existsSync(obj) || !existsSync(`${obj}.flags`)) return false
  if (readFileSync(`${obj}.flags`, 'utf8') !== flagsStamp) return false
  const deps = depsOf(depfile)
  if (!deps) return false
  const built = statSync(obj).mtimeMs
  for (const d of [...deps, vmlinux]) {
    if (!existsSync(d) || statSync(d).mtimeMs > built) return false
  }
  return true
}

function compile(args) {
  return new Promise((resolveRun) => {
    execFile(
      CLANG,
      args,
      { maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        resolveRun({
          ok: !error,
          output: `${stdout}${stderr}`,
          spawnError: error && error.code === 'ENOENT',
        })
      },
    )
  })
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const log = opts.quiet ? () => {} : (m) => process.stdout.write(`bpf-build: ${m}\n`)
  if (!existsSync(opts.src)) fail(`no BPF source directory at ${opts.src}`)
  if (!which(CLANG)) fail(`${CLANG} is not installed (Debian package clang-19; run tools/setup.sh)`)
  mkdirSync(join(opts.out, 'tests'), { recursive: true })
  ensureVmlinux(opts.out, log)
  const vmlinux = join(opts.out, 'vmlinux.h')

  const baseFlags = [
    '-target',
    'bpf',
    '-O2',
    '-g',
    '-D__TARGET_ARCH_x86',
    '-mcpu=v3',
    '-Wall',
    '-Wno-unused-function',
    '-Wno-address-of-packed-member',
    '-I',
    opts.out,
    '-I',
    join(opts.src, 'include'),
    '-I',
    opts.src,
  ]
  const flagsStamp = sha256(
    JSON.stringify([
      CLANG,
      baseFlags.map((f) => f.replace(opts.out, '<out>').replace(opts.src, '<src>')),
    ]),
  )

  const jobs = sources(opts.src).map(({ file, sub }) => {
    const name = basename(file, '.c')
    const obj = join(opts.out, sub, `${name}.o`)
    return { file, obj, depfile: `${obj}.d` }
  })
  const todo = jobs.filter((j) => opts.force || !upToDate(j.obj, j.depfile, flagsStamp, vmlinux))
  const failures = []
  let next = 0
  const worker = async () => {
    while (next < todo.length) {
      const job = todo[next++]
      const tmp = `${job.obj}.tmp`
      const r = await compile([
        ...baseFlags,
        '-MD',
        '-MF',
        job.depfile,
        '-MT',
        job.obj,
        '-c',
        job.file,
        '-o',
        tmp,
      ])
      if (r.spawnError) fail(`could not run ${CLANG}`)
      if (!r.ok) {
        failures.push({ job, output: r.output })
        continue
      }
      renameSync(tmp, job.obj)
      writeFileSync(`${job.obj}.flags`, flagsStamp)
      if (r.output.trim()) process.stderr.write(r.output)
      log(`built ${relative(process.cwd(), job.obj)}`)
    }
  }
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(availableParallelism(), todo.length)) }, worker),
  )
  if (failures.length > 0) {
    for (const { job, output } of failures) {
      process.stderr.write(
        `bpf-build: ${relative(process.cwd(), job.file)} failed to compile:\n${output}`,
      )
    }
    process.stderr.write(`bpf-build: ${failures.length} of ${jobs.length} BPF object(s) failed\n`)
    process.exit(1)
  }
  if (todo.length === 0) log(`${jobs.length} BPF object(s) up to date`)
}

main().catch((error) => fail(error instanceof Error ? error.message : String(error)))
