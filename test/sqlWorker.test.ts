/**
 * The worker on the real databases: jobs run and settle, enqueueing joins the caller's
 * transaction, idle workers wake on notifications, and a running job can be cancelled from
 * another process (here: another client on the same database).
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Exit, Layer, Option, Schema } from "effect"
import { Job, JobClient, JobStore, Worker } from "conveyor"
import { finishedJobs, start } from "./helpers.js"
import { freshSchema, freshSqliteFile, pgStoreLayer, sqliteStoreLayer } from "./databases.js"

const Echo = Job.make({ name: "echo", payload: Schema.Struct({ n: Schema.Number }), maxAttempts: 2 })

const databases = [
  { name: "sqlite", make: () => sqliteStoreLayer(freshSqliteFile()), shared: (file: string) => sqliteStoreLayer(file) },
  { name: "postgresql", make: () => pgStoreLayer(freshSchema()), shared: (schema: string) => pgStoreLayer(schema) }
] as const

for (const database of databases) {
  // Fresh: layers are memoized by reference across a file, and each database needs its own client.
  const withClient = Layer.fresh(JobClient.layer).pipe(Layer.provideMerge(database.make()))

  layer(withClient, { excludeTestServices: true, timeout: 60_000 })(`worker on ${database.name}`, (it) => {
      it.scoped("runs enqueued jobs to completion and stores their errors", () =>
        Effect.gen(function*() {
          const seen: Array<number> = []
          const handler = Echo.handler(({ n }) =>
            n < 0 ? Effect.die(`negative: ${n}`) : Effect.sync(() => seen.push(n))
          )
          const worker = yield* start(Worker.layer({ handlers: [handler], concurrency: 4, minPollInterval: "10 millis" }))
          const done = yield* finishedJobs(worker, 21)
          const client = yield* JobClient
          const results = yield* client.enqueueMany(Echo, [...Array.from({ length: 20 }, (_, n) => ({ payload: { n } })), {
            payload: { n: -1 },
            options: { maxAttempts: 1 }
          }])
          yield* done
          expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, n) => n))
          const jobs = yield* Effect.forEach(results, (r) => client.get(r.id))
          expect(jobs.slice(0, 20).every((job) => job.state === "completed" && job.attempt === 1)).toBe(true)
          const failed = jobs[20]!
          expect(failed.state).toBe("discarded")
          expect(failed.errors[0]).toMatchObject({ attempt: 1, kind: "defect" })
          expect(failed.errors[0]!.message).toContain("negative: -1")
        }))

      it.effect("enqueues inside the caller's transaction: committed with it, rolled back with it", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const client = yield* JobClient
          const store = yield* JobStore
          const before = (yield* store.list({ name: "echo", limit: 1000 })).length
          const committed = yield* sql.withTransaction(client.enqueue(Echo, { n: 100 }, { queue: "tx" }))
          expect((yield* client.get(committed)).state).toBe("available")
          const failure = yield* sql.withTransaction(
            Effect.gen(function*() {
              yield* client.enqueue(Echo, { n: 101 }, { queue: "tx" })
              return yield* Effect.fail("the request failed after enqueueing")
            })
          ).pipe(Effect.exit)
          expect(Exit.isFailure(failure)).toBe(true)
          const jobs = yield* store.list({ queue: "tx" })
          expect(jobs.map((job) => JSON.parse(job.payload).n)).toEqual([100])
          expect((yield* store.list({ name: "echo", limit: 1000 })).length).toBe(before + 1)
        }))

      it.scoped("hands a job enqueued in this process straight to its idle worker, but not one in a transaction", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const client = yield* JobClient
          const store = yield* JobStore
          let claims = 0
          const counting = Layer.succeed(JobStore, {
            ...store,
            claim: (request) => Effect.suspend(() => (claims++, store.claim(request)))
          })
          // Polling every 30 s: a job that starts at once was handed over, or woke a claim.
          const worker = yield* start(Worker.layer({
            handlers: [Echo.handler(() => Effect.void)],
            queues: { handoff: 2 },
            pollInterval: "30 seconds",
            minPollInterval: "30 seconds"
          })).pipe(Effect.provide(counting))
          yield* Effect.sleep("100 millis")
          const claimsBefore = claims
          const first = yield* finishedJobs(worker, 1)
          const id = yield* client.enqueue(Echo, { n: 1 }, { queue: "handoff" })
          const [handed] = yield* first
          expect(handed!.job).toMatchObject({ id, attempt: 1, workerId: worker.id })
          expect(handed!.job.leaseToken).toBe(Option.getOrThrow(yield* store.get(id)).leaseToken)
          expect(handed!.outcome).toBe("Complete")
          expect(claims).toBe(claimsBefore)

          // In a transaction the job may still roll back: it is inserted waiting, and claimed once committed.
          const second = yield* finishedJobs(worker, 1)
          const inTransaction = yield* sql.withTransaction(Effect.gen(function*() {
            const id = yield* client.enqueue(Echo, { n: 2 }, { queue: "handoff" })
            expect((yield* client.get(id)).state).toBe("available")
            return id
          }))
          const [claimed] = yield* second
          expect(claimed!.job.id).toBe(inTransaction)
          expect(claims).toBeGreaterThan(claimsBefore)
          expect((yield* client.get(inTransaction)).state).toBe("completed")
        }))
  })
}

describe("across processes on postgresql", () => {
  it.scopedLive("wakes an idle worker through NOTIFY, and cancels a running job from another connection", () =>
    Effect.gen(function*() {
      const schema = freshSchema("notify")
      // Two stores on the same schema, as two processes would have.
      const workerSide = yield* Layer.build(pgStoreLayer(schema))
      const otherSide = yield* Layer.build(Layer.fresh(JobClient.layer).pipe(Layer.provideMerge(pgStoreLayer(schema))))
      const started = yield* Deferred.make<number>()
      let finalized = false
      const handler = Echo.handler(({ n }) =>
        Effect.gen(function*() {
          yield* Effect.addFinalizer(() => Effect.sync(() => (finalized = true)))
          yield* Deferred.succeed(started, n)
          return yield* Effect.never
        })
      )
      // Polling every 30 s: only a notification can start the job quickly.
      const worker = yield* start(Worker.layer({ handlers: [handler], pollInterval: "30 seconds", minPollInterval: "30 seconds" }))
        .pipe(Effect.provide(workerSide))
      const client = Option.getOrThrow(yield* Effect.serviceOption(JobClient).pipe(Effect.provide(otherSide)))
      yield* Effect.sleep("100 millis")
      const done = yield* finishedJobs(worker, 1)
      const enqueuedAt = Date.now()
      const id = yield* client.enqueue(Echo, { n: 7 })
      expect(yield* Deferred.await(started)).toBe(7)
      expect(Date.now() - enqueuedAt).toBeLessThan(2000)
      yield* client.cancel(id)
      const [event] = yield* done
      expect(event!.outcome).toBe("Cancel")
      expect(finalized).toBe(true)
      expect((yield* client.get(id)).state).toBe("cancelled")
    }), { timeout: 30_000 })
})
