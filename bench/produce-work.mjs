// Produce while working (the W5 workload), without the harness: an idle worker, then a producer
// enqueueing `n` jobs in awaited batches of `batch`, timed until the store has settled them all.
// `node bench/produce-work.mjs sqlite|pg [n] [batch] [prefetch]` after `npm run build`;
// `PROFILE=file.cpuprofile` profiles the last round; `RETENTION_COMPLETED="0 millis"` deletes
// jobs as they complete.
import { Session } from 'node:inspector/promises'
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Redacted, Schema, Scope, Exit } from 'effect'
import { SqlClient } from '@effect/sql'
import { Job, JobClient, JobStore, Worker } from '../dist/index.js'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const [storeName = 'pg', nArg = '10000', batchArg = '100', prefetchArg = '3000'] = process.argv.slice(2)
const n = Number(nArg)
const batch = Number(batchArg)
const dir = mkdtempSync(join(tmpdir(), 'conveyor-produce-'))
const storeLayer = storeName === 'sqlite'
  ? (await import('../dist/sqlite.js')).layerWith({ filename: join(dir, 'produce.db') })
  : (await import('../dist/pg.js')).layerWith({ url: Redacted.make(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'), schema: 'conveyor_produce', maxConnections: 10 })
const runtime = ManagedRuntime.make(Layer.mergeAll(storeLayer, Logger.minimumLogLevel(LogLevel.Warning)))
const BenchJob = Job.make({ name: 'bench', queue: 'bench', payload: Schema.Struct({ i: Schema.Number }) })
const run = (effect) => runtime.runPromise(effect)
const retention = process.env.RETENTION_COMPLETED === undefined ? undefined : { completed: process.env.RETENTION_COMPLETED }
const profiler = new Session()

for (let round = 0; round < 4; round++) {
  const profiling = process.env.PROFILE !== undefined && round === 3
  let seen = 0
  let resolve
  const done = new Promise((r) => { resolve = r })
  const handler = BenchJob.handler(() => Effect.promise(async () => { if (++seen === n) resolve() }))
  const scope = await run(Scope.make())
  await run(Layer.buildWithScope(Worker.layer({ handlers: [handler], concurrency: 16, prefetch: Number(prefetchArg), ...(retention && { retention }) }), scope))
  await new Promise((r) => setTimeout(r, 1000))
  if (profiling) {
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.start')
  }
  const started = performance.now()
  const cpuStart = process.cpuUsage()
  for (let i = 0; i < n; i += batch) {
    await run(Effect.flatMap(JobClient, (client) => client.enqueueMany(BenchJob, Array.from({ length: Math.min(batch, n - i) }, (_, k) => ({ payload: { i: i + k } })))))
  }
  const produced = performance.now()
  await done
  while (true) {
    const counts = await run(Effect.flatMap(JobStore, (s) => s.counts))
    if (counts.filter((c) => c.state !== 'completed').reduce((a, c) => a + c.count, 0) === 0) break
    await new Promise((r) => setTimeout(r, 2))
  }
  const elapsed = performance.now() - started
  const cpu = process.cpuUsage(cpuStart)
  if (profiling) {
    writeFileSync(process.env.PROFILE, JSON.stringify((await profiler.post('Profiler.stop')).profile))
    profiler.disconnect()
  }
  await run(Scope.close(scope, Exit.void))
  console.log(`${storeName} round ${round}: ${n} jobs in ${elapsed.toFixed(0)} ms = ${(n / elapsed * 1000).toFixed(0)} jobs/s (produced in ${(produced - started).toFixed(0)} ms; ${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU per job)`)
  await run(Effect.flatMap(JobStore, (s) => s.prune({ finishedBefore: { completed: Date.now() + 1000 }, limit: 1e9 })))
}
if (storeName === 'pg') await run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP SCHEMA conveyor_produce CASCADE`))
await runtime.dispose()
rmSync(dir, { recursive: true, force: true })
