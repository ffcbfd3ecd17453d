// A drain without the harness, for profiling the worker: `node bench/drain.mjs [memory|sqlite|pg] [n] [prefetch] [async]`
// (`async`: the handler awaits a promise, as the peer harness's handler does;
// `RETENTION_COMPLETED="0 millis"` deletes jobs as they complete, as the tuned bench profile does)
// (after `npm run build`). `PROFILE=file.cpuprofile` writes a CPU profile of the last round's
// drain alone (without the enqueues before it); `PROFILE_ROUND=0` profiles the first (cold) one.
import { Effect, Layer, Schema, Scope, Exit } from 'effect'
import { Job, JobClient, JobStore, Worker } from '../dist/index.js'
import { readFileSync } from 'node:fs'
import { openStore, roundProfile } from './standalone.mjs'

const [storeName = 'memory', nArg = '20000', prefetchArg = '500', mode = 'sync'] = process.argv.slice(2)
const n = Number(nArg)
const { run, close } = await openStore(storeName, 'drain')
const BenchJob = Job.make({ name: 'bench', queue: 'bench', payload: Schema.Struct({ i: Schema.Number }) })

// Busy time of the whole machine (/proc/stat, all CPUs), to see what the database spends beside this process.
const machineBusyMs = () => {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/)
  const [user, nice, system, , , irq, softirq, steal] = fields.map(Number)
  return (user + nice + system + irq + softirq + steal) * 10
}

for (let round = 0; round < 3; round++) {
  for (let i = 0; i < n; i += 1000) {
    await run(Effect.flatMap(JobClient, (client) => client.enqueueMany(BenchJob, Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ payload: { i: i + k } })))))
  }
  let seen = 0
  let resolve
  const done = new Promise((r) => { resolve = r })
  let first = 0
  const count = () => { if (seen === 0) first = performance.now(); if (++seen === n) resolve() }
  const handler = BenchJob.handler(() => mode === 'async' ? Effect.promise(async () => count()) : Effect.sync(count))
  const profile = roundProfile(round === Number(process.env.PROFILE_ROUND ?? 2))
  await profile.start()
  const started = performance.now()
  const cpuStart = process.cpuUsage()
  const machineStart = machineBusyMs()
  const scope = await run(Scope.make())
  const retention = process.env.RETENTION_COMPLETED === undefined ? undefined : { completed: process.env.RETENTION_COMPLETED }
  await run(Layer.buildWithScope(Worker.layer({ handlers: [handler], concurrency: 16, prefetch: Number(prefetchArg), ...(retention && { retention }) }), scope))
  await done
  const handlersDone = performance.now()
  // Wait until the store has every settlement.
  while (true) {
    const counts = await run(Effect.flatMap(JobStore, (s) => s.counts))
    const open = counts.filter((c) => c.state !== 'completed').reduce((a, c) => a + c.count, 0)
    if (open === 0) break
    await new Promise((r) => setTimeout(r, 2))
  }
  const elapsed = performance.now() - started
  const cpu = process.cpuUsage(cpuStart)
  const machineMs = machineBusyMs() - machineStart
  await profile.stop()
  await run(Scope.close(scope, Exit.void))
  console.log(`${storeName} round ${round}: ${n} jobs in ${elapsed.toFixed(0)} ms = ${(n / elapsed * 1000).toFixed(0)} jobs/s (first handler at ${(first - started).toFixed(1)} ms, handlers done at ${(handlersDone - started).toFixed(0)} ms; ${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU per job; rest of the machine ${((machineMs * 1000 - cpu.user - cpu.system) / n).toFixed(1)} µs per job)`)
  await run(Effect.flatMap(JobStore, (s) => s.prune({ finishedBefore: { completed: Date.now() + 1000 }, limit: 1e9 })))
}
await close()
