// Single enqueues one after another, each awaited (the W1 workload), without the harness:
// `node bench/enqueue-one.mjs sqlite|pg [n]` after `npm run build`. `PROFILE=file` writes a CPU
// profile of the last round.
import { Effect, Schema } from 'effect'
import { Job, JobClient } from '../dist/index.js'
import { openStore, roundProfile } from './standalone.mjs'

const [storeName = 'pg', nArg = '2000'] = process.argv.slice(2)
const n = Number(nArg)
const { run, close } = await openStore(storeName, 'enqueue')
const BenchJob = Job.make({ name: 'bench', queue: 'bench', payload: Schema.Struct({ i: Schema.Number, t: Schema.optional(Schema.Number) }) })
const enqueue = (i) => run(Effect.flatMap(JobClient, (client) => client.enqueue(BenchJob, { i })))

for (let round = 0; round < 4; round++) {
  const profile = roundProfile(round === 3)
  await profile.start()
  const started = performance.now()
  const cpuStart = process.cpuUsage()
  for (let i = 0; i < n; i++) await enqueue(i)
  const elapsed = performance.now() - started
  const cpu = process.cpuUsage(cpuStart)
  await profile.stop()
  console.log(`${storeName} round ${round}: ${(n / elapsed * 1000).toFixed(0)} enqueues/s, ${(elapsed * 1000 / n).toFixed(0)} µs each, ${((cpu.user + cpu.system) / n).toFixed(0)} µs CPU each`)
}
await close()
