// Starts a worker on a fresh SQLite file with the example's settings, lets it idle, and prints
// its resident memory after 10 s and after 60 s. The first reading still holds the young
// generation V8 grew while the process started; V8's memory reducer gives it back once the
// process has been idle for a while (some 20-30 s here), which the second reading shows.
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Schema, Scope, Exit } from 'effect'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Job, Worker } from '../dist/index.js'
import * as Sqlite from '../dist/sqlite.js'

const dir = mkdtempSync(join(tmpdir(), 'conveyor-idle-'))
const Noop = Job.make({ name: 'noop', payload: Schema.Struct({}) })
const runtime = ManagedRuntime.make(Layer.mergeAll(Sqlite.layerWith({ filename: join(dir, 'idle.db') }), Logger.minimumLogLevel(LogLevel.Warning)))
const scope = await runtime.runPromise(Scope.make())
await runtime.runPromise(Layer.buildWithScope(Worker.layer({ handlers: [Noop.handler(() => Effect.void)], concurrency: 16 }), scope))
const flags = process.execArgv.join(' ') || 'defaults'
let idle = 0
for (const after of [10, 60]) {
  await runtime.runPromise(Effect.sleep(`${after - idle} seconds`))
  idle = after
  const rss = process.memoryUsage().rss / 1024 / 1024
  console.log(`idle worker RSS after ${after} s (node ${flags}): ${rss.toFixed(1)} MB`)
}
await runtime.runPromise(Scope.close(scope, Exit.void))
await runtime.dispose()
rmSync(dir, { recursive: true, force: true })
