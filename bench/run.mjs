#!/usr/bin/env node
// `npm run bench`: Conveyor beside graphile-worker, pg-boss and BullMQ in the shared peer
// harness (../shared/bench/peers, run from a copy as its README asks), then the idle RSS of a
// worker process. Extra arguments go to the harness (e.g. `npm run bench -- --quick`).
// Results land in bench/results/.
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..')
const shared = resolve(root, '..', 'shared', 'bench', 'peers')
const copy = join(tmpdir(), 'conveyor-bench-peers')
const args = process.argv.slice(2)
const onlyConveyor = args.includes('--conveyor-only')
const harnessArgs = args.filter((a) => a !== '--conveyor-only')

const run = (command, commandArgs, options) => {
  const result = spawnSync(command, commandArgs, { stdio: 'inherit', ...options })
  if (result.status !== 0) process.exit(result.status ?? 1)
}

if (!existsSync(shared)) {
  console.error(`peer harness not found at ${shared}`)
  process.exit(1)
}
if (!existsSync(join(copy, 'run.mjs'))) {
  cpSync(shared, copy, { recursive: true })
  spawnSync('chmod', ['-R', 'u+w', copy])
}
if (!existsSync(join(copy, 'node_modules'))) run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: copy })

mkdirSync(join(here, 'results'), { recursive: true })
run(process.execPath, [
  'run.mjs',
  '--peer', onlyConveyor ? 'none' : 'all',
  '--adapter', join(here, 'pg.mjs'),
  '--adapter', join(here, 'sqlite.mjs'),
  '--out', join(here, 'results'),
  ...harnessArgs
], { cwd: copy })

// Idle RSS: a worker on SQLite, started and left idle; with Node's defaults, and with a small
// young generation (most of an idle process's RSS is V8's reserved semi-spaces and loaded code).
run(process.execPath, [join(here, 'idle-worker.mjs')])
run(process.execPath, ['--max-semi-space-size=2', join(here, 'idle-worker.mjs')])
