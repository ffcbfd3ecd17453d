// Conveyor in the peer benchmark harness (../shared/bench/peers): the adapter interface of its
// README, for one store. `pg.mjs` and `sqlite.mjs` beside this file pick the store.
// Imports the built package (`npm run build`), as an application would.
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Redacted, Schema, Scope, Exit } from 'effect'
import { SqlClient } from '@effect/sql'
import { Job, JobClient, JobStore, Worker } from '../dist/index.js'
import * as Pg from '../dist/pg.js'
import * as Sqlite from '../dist/sqlite.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const BenchJob = Job.make({
  name: 'bench',
  queue: 'bench',
  payload: Schema.Struct({ i: Schema.Number, t: Schema.optional(Schema.Number) })
})

export const makeAdapter = (store) => {
  let runtime
  let sqliteDir
  const run = (effect) => runtime.runPromise(effect)

  const profiles = {
    default: {
      description: 'Worker defaults: prefetch = concurrency, poll 50 ms doubling to 1 s, ' +
        (store === 'pg' ? 'LISTEN/NOTIFY wake-ups' : 'in-process wake-ups, the connection in a worker thread') +
        ', batched settlements',
      options: {}
    },
    tuned: {
      description: 'prefetch 3000 (larger claim batches), completed jobs deleted as they complete ' +
        '(retention.completed 0, as graphile-worker does); otherwise defaults',
      options: { prefetch: 3000, retention: { completed: 0 } }
    }
  }

  return {
    name: `conveyor-${store}`,
    packages: ['effect', '@effect/sql', ...(store === 'pg' ? ['@effect/sql-pg'] : ['@effect/sql-sqlite-node', 'better-sqlite3'])],
    profiles,
    async setup (ctx) {
      let storeLayer
      if (store === 'pg') {
        const url = await ctx.freshPostgresDatabase('conveyor')
        storeLayer = Pg.layerWith({ url: Redacted.make(url), maxConnections: 10 })
      } else {
        sqliteDir = mkdtempSync(join(tmpdir(), 'conveyor-bench-'))
        storeLayer = Sqlite.layerWith({ filename: join(sqliteDir, 'bench.db') })
      }
      runtime = ManagedRuntime.make(Layer.mergeAll(storeLayer, Logger.minimumLogLevel(LogLevel.Warning)))
      await runtime.runPromise(Effect.void)
    },
    async reset () {
      await run(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        store === 'pg' ? sql`TRUNCATE conveyor.jobs` : sql`DELETE FROM conveyor_jobs`))
    },
    async enqueueOne (payload) {
      await run(Effect.flatMap(JobClient, (client) => client.enqueue(BenchJob, payload)))
    },
    async enqueueMany (payloads) {
      await run(Effect.flatMap(JobClient, (client) => client.enqueueMany(BenchJob, payloads.map((payload) => ({ payload })))))
    },
    async startWorker ({ concurrency, handler, profile }) {
      const options = profiles[profile]?.options ?? {}
      const scope = await run(Scope.make())
      const handle = BenchJob.handler((payload) => Effect.promise(async () => { await handler(payload) }))
      await run(Layer.buildWithScope(Worker.layer({ handlers: [handle], concurrency, ...options }), scope))
      return async function stop () {
        await run(Scope.close(scope, Exit.void))
      }
    },
    async countUnfinished () {
      const counts = await run(Effect.flatMap(JobStore, (s) => s.counts))
      return counts
        .filter((c) => c.state === 'available' || c.state === 'scheduled' || c.state === 'running' || c.state === 'retryable')
        .reduce((n, c) => n + c.count, 0)
    },
    async teardown () {
      await runtime?.dispose()
      if (sqliteDir) rmSync(sqliteDir, { recursive: true, force: true })
    }
  }
}
