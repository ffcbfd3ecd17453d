// Enqueue-to-start latency with an idle worker (the W4 workload), without the harness, split
// into its steps: `node bench/latency.mjs sqlite|pg [n] [gapMs]` after `npm run build`;
// `PROFILE=file.cpuprofile` profiles the enqueues.
// On PostgreSQL the split comes from timing the driver's insert: before it was sent (Conveyor's
// enqueue), the database round trip, and after its answer (hand-over to the handler).
import { Effect, Layer, Schema, Scope, Exit } from 'effect'
import Pg from 'pg'
import { Job, JobClient, Worker } from '../dist/index.js'
import { openStore, roundProfile } from './standalone.mjs'

const [storeName = 'pg', nArg = '300', gapArg = '20'] = process.argv.slice(2)
const n = Number(nArg)
const gap = Number(gapArg)
const { run, close } = await openStore(storeName, 'latency')
const BenchJob = Job.make({ name: 'bench', queue: 'bench', payload: Schema.Struct({ i: Schema.Number }) })

// The insert's send and answer times, by the driver.
let sent = 0
let answered = 0
const query = Pg.Client.prototype.query
Pg.Client.prototype.query = function (config, values, callback) {
  const text = typeof config === 'string' ? config : config?.text
  if (typeof text !== 'string' || !text.includes('INSERT INTO')) return query.call(this, config, values, callback)
  sent = performance.now()
  const done = typeof values === 'function' ? values : callback
  const wrap = (...args) => { answered = performance.now(); return done(...args) }
  return typeof values === 'function' ? query.call(this, config, wrap) : query.call(this, config, values, wrap)
}

const starts = new Map()
const handler = BenchJob.handler(({ i }) => Effect.sync(() => starts.set(i, performance.now())))
const scope = await run(Scope.make())
await run(Layer.buildWithScope(Worker.layer({ handlers: [handler], concurrency: 16 }), scope))
await new Promise((r) => setTimeout(r, 1000))
const rows = []
const profile = roundProfile(true)
await profile.start()
const origin = performance.now()
for (let i = 0; i < n; i++) {
  const due = origin + i * gap
  const wait = due - performance.now()
  if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  const t0 = performance.now()
  await run(Effect.flatMap(JobClient, (client) => client.enqueue(BenchJob, { i })))
  const t1 = performance.now()
  while (!starts.has(i)) await new Promise((r) => setImmediate(r))
  rows.push({ total: starts.get(i) - t0, enqueued: t1 - t0, before: sent - t0, database: answered - sent, after: starts.get(i) - answered })
}
await profile.stop()
await run(Scope.close(scope, Exit.void))
const pick = (key, q) => { const v = rows.map((r) => r[key]).sort((a, b) => a - b); return v[Math.min(v.length - 1, Math.floor(q * v.length))].toFixed(2) }
for (const key of ['total', 'enqueued', ...(storeName === 'pg' ? ['before', 'database', 'after'] : [])]) {
  console.log(`${key.padEnd(9)} p50 ${pick(key, 0.5)}  p95 ${pick(key, 0.95)}  p99 ${pick(key, 0.99)} ms`)
}
await close()
