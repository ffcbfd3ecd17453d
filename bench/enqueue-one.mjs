// Single enqueues one after another, each awaited (the W1 workload), without the harness:
// `node bench/enqueue-one.mjs sqlite|pg [n]` after `npm run build`. `PROFILE=file` writes a CPU
// profile of the last round.
import { Session } from 'node:inspector/promises'
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Redacted, Schema } from 'effect'
import { SqlClient } from '@effect/sql'
import { Job, JobClient } from '../dist/index.js'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const [storeName = 'pg', nArg = '2000'] = process.argv.slice(2)
const n = Number(nArg)
const dir = mkdtempSync(join(tmpdir(), 'conveyor-enqueue-'))
const storeLayer = storeName === 'sqlite'
  ? (await import('../dist/sqlite.js')).layerWith({ filename: join(dir, 'enqueue.db') })
  : (await import('../dist/pg.js')).layerWith({ url: Redacted.make(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'), schema: 'conveyor_enqueue', maxConnections: 10 })
const runtime = ManagedRuntime.make(Layer.mergeAll(storeLayer, Logger.minimumLogLevel(LogLevel.Warning)))
const BenchJob = Job.make({ name: 'bench', queue: 'bench', payload: Schema.Struct({ i: Schema.Number, t: Schema.optional(Schema.Number) }) })
const run = (effect) => runtime.runPromise(effect)
const enqueue = (i) => run(Effect.flatMap(JobClient, (client) => client.enqueue(BenchJob, { i })))
const profiler = new Session()

for (let round = 0; round < 4; round++) {
  const profiling = process.env.PROFILE !== undefined && round === 3
  if (profiling) {
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.start')
  }
  const started = performance.now()
  const cpuStart = process.cpuUsage()
  for (let i = 0; i < n; i++) await enqueue(i)
  const elapsed = performance.now() - started
  const cpu = process.cpuUsage(cpuStart)
  if (profiling) writeFileSync(process.env.PROFILE, JSON.stringify((await profiler.post('Profiler.stop')).profile))
  console.log(`${storeName} round ${round}: ${(n / elapsed * 1000).toFixed(0)} enqueues/s, ${(elapsed * 1000 / n).toFixed(0)} µs each, ${((cpu.user + cpu.system) / n).toFixed(0)} µs CPU each`)
}
if (storeName === 'pg') await run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP SCHEMA conveyor_enqueue CASCADE`))
await runtime.dispose()
rmSync(dir, { recursive: true, force: true })
