// The worker's own cost per job, without a database: a store that answers every claim at once
// with ready jobs and accepts every settlement. `node bench/worker-overhead.mjs [jobs]` after
// `npm run build`; prints wall and CPU time per no-op job (the first round warms up). With `async`
// as the second argument the handler awaits a promise, as the peer harness's handler does.
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Schema, Scope, Exit, Stream } from 'effect'
import { Job, JobStore, Worker } from '../dist/index.js'

const n = Number(process.argv[2] ?? 100000)
const mode = process.argv[3] ?? 'sync'
const now = Date.now()
const record = (i) => ({
  id: String(i), name: 'bench', queue: 'bench', state: 'running', payload: `{"i":${i}}`, priority: 0, attempt: 1,
  maxAttempts: 25, trigger: 'queue', tenantId: null, metadata: {}, uniqueKey: null, traceContext: null,
  enqueuedAt: now, runAt: now, attemptedAt: now, finishedAt: null, leaseToken: 1, leaseExpiresAt: now + 30000,
  workerId: 'bench', cancelRequested: false, errors: [], result: null
})
let claimed = 0
const instantStore = {
  claim: (request) => Effect.sync(() => {
    const count = Math.min(request.queues[0].limit, n - claimed)
    return { jobs: Array.from({ length: count }, () => record(claimed++)), nextRunAt: null }
  }),
  settle: (settlements) => Effect.succeed(settlements.map(() => true)),
  heartbeat: () => Effect.succeed({ lost: [], cancelRequested: [] }),
  rescue: Effect.succeed({ retried: [], discarded: [] }),
  prune: () => Effect.succeed(0),
  subscribeWakeups: Effect.succeed(Stream.never),
  subscribeCancellations: Effect.succeed(Stream.never),
  registerLocalWorker: () => Effect.void
}
const runtime = ManagedRuntime.make(Layer.mergeAll(Layer.succeed(JobStore, instantStore), Logger.minimumLogLevel(LogLevel.Warning)))
const BenchJob = Job.make({ name: 'bench', queue: 'bench', payload: Schema.Struct({ i: Schema.Number }) })

for (let round = 0; round < 4; round++) {
  claimed = 0
  let seen = 0
  let resolve
  const done = new Promise((r) => { resolve = r })
  const count = () => { if (++seen === n) resolve() }
  const handler = BenchJob.handler(() => mode === 'async' ? Effect.promise(async () => count()) : Effect.sync(count))
  const started = performance.now()
  const cpuStart = process.cpuUsage()
  const scope = await runtime.runPromise(Scope.make())
  await runtime.runPromise(Layer.buildWithScope(Worker.layer({ handlers: [handler], concurrency: 16, prefetch: 500 }), scope))
  await done
  const wall = performance.now() - started
  const cpu = process.cpuUsage(cpuStart)
  await runtime.runPromise(Scope.close(scope, Exit.void))
  if (round > 0) console.log(`round ${round}: ${(wall * 1000 / n).toFixed(1)} µs wall, ${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU per job`)
}
await runtime.dispose()
