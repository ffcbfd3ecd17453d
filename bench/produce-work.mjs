// Produce while working (the W5 workload), without the harness: an idle worker, then a producer
// enqueueing `n` jobs in awaited batches of `batch`, timed until the store has settled them all.
// `node bench/produce-work.mjs sqlite|pg [n] [batch] [prefetch]` after `npm run build`;
// `PROFILE=file.cpuprofile` profiles the last round; `RETENTION_COMPLETED="0 millis"` deletes
// jobs as they complete.
import { Effect, Layer, Schema, Scope, Exit } from 'effect'
import { Job, JobClient, JobStore, Worker } from '../dist/index.js'
import { openStore, roundProfile } from './standalone.mjs'

const [storeName = 'pg', nArg = '10000', batchArg = '100', prefetchArg = '3000'] = process.argv.slice(2)
const n = Number(nArg)
const batch = Number(batchArg)
const { run, close } = await openStore(storeName, 'produce')
const BenchJob = Job.make({ name: 'bench', queue: 'bench', payload: Schema.Struct({ i: Schema.Number }) })
const retention = process.env.RETENTION_COMPLETED === undefined ? undefined : { completed: process.env.RETENTION_COMPLETED }

for (let round = 0; round < 4; round++) {
  const profile = roundProfile(round === 3)
  let seen = 0
  let resolve
  const done = new Promise((r) => { resolve = r })
  const handler = BenchJob.handler(() => Effect.promise(async () => { if (++seen === n) resolve() }))
  const scope = await run(Scope.make())
  await run(Layer.buildWithScope(Worker.layer({ handlers: [handler], concurrency: 16, prefetch: Number(prefetchArg), ...(retention && { retention }) }), scope))
  await new Promise((r) => setTimeout(r, 1000))
  await profile.start()
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
  await profile.stop()
  await run(Scope.close(scope, Exit.void))
  console.log(`${storeName} round ${round}: ${n} jobs in ${elapsed.toFixed(0)} ms = ${(n / elapsed * 1000).toFixed(0)} jobs/s (produced in ${(produced - started).toFixed(0)} ms; ${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU per job, ${(cpu.system / n).toFixed(1)} of it in the kernel)`)
  await run(Effect.flatMap(JobStore, (s) => s.prune({ finishedBefore: { completed: Date.now() + 1000 }, limit: 1e9 })))
}
await close()
