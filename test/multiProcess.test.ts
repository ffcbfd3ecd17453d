/**
 * Several worker processes on one database: every job completes exactly once; a worker killed
 * with SIGKILL mid-job has its jobs rescued by the others; workers whose PostgreSQL connections
 * are terminated reconnect and finish. Real processes, real databases, real time.
 */
import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { type Duration, Effect, Layer, Schedule } from "effect"
import { JobClient, JobStore } from "conveyor"
import { MultiProcessJob } from "./fixtures/workerProcess.js"
import { freshSchema, freshSqliteFile, pgStoreLayer, sqliteStoreLayer } from "./databases.js"
import { type Spawned, exitReport, spawnFixture, stopAll } from "./processes.js"

/** A worker process; `ran(worker)` is the jobs it has run so far (it prints `ran <i>` for each). */
const spawnWorker = (env: Record<string, string>) => spawnFixture("workerProcess.ts", env)
const ran = (worker: Spawned) =>
  worker.lines.flatMap((line) => (line.startsWith("ran ") ? [Number(line.slice(4))] : []))

const countBy = (values: ReadonlyArray<number>) => {
  const counts = new Map<number, number>()
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1)
  return counts
}

const enqueue = (n: number) =>
  Effect.gen(function*() {
    const client = yield* JobClient
    for (let start = 0; start < n; start += 1000) {
      yield* client.enqueueMany(
        MultiProcessJob,
        Array.from({ length: Math.min(1000, n - start) }, (_, k) => ({ payload: { i: start + k } }))
      )
    }
  })

const completed = Effect.map(
  Effect.flatMap(JobStore, (store) => store.counts),
  (counts) => counts.filter((c) => c.queue === "mp" && c.state === "completed").reduce((n, c) => n + c.count, 0)
)

/** Wait (really) until `n` jobs are completed. */
const awaitCompleted = (n: number, timeout: Duration.DurationInput) =>
  completed.pipe(
    Effect.repeat({ schedule: Schedule.spaced("200 millis"), until: (done) => done >= n }),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`fewer than ${n} jobs completed in ${timeout}`) })
  )

const backends = [
  { name: "postgresql", store: "pg", fresh: () => freshSchema("mp"), layer: (target: string) => pgStoreLayer(target) },
  { name: "sqlite", store: "sqlite", fresh: () => freshSqliteFile("mp"), layer: (target: string) => sqliteStoreLayer(target) }
] as const

for (const backend of backends) {
  describe(`several worker processes on ${backend.name}`, () => {
    it.live("complete 20,000 jobs, each exactly once", () =>
      Effect.gen(function*() {
        const target = backend.fresh()
        const n = 20_000
        yield* Effect.gen(function*() {
          yield* enqueue(n)
          const workers = Array.from({ length: 4 }, () =>
            spawnWorker({
              STORE: backend.store,
              TARGET: target,
              WORKER_OPTIONS: JSON.stringify({ concurrency: 16, prefetch: 64 })
            }))
          yield* awaitCompleted(n, "240 seconds")
          const codes = yield* stopAll(workers)
          expect(codes, exitReport(workers)).toEqual([0, 0, 0, 0])
          const runs = countBy(workers.flatMap(ran))
          expect(runs.size).toBe(n)
          expect([...runs.values()].every((count) => count === 1)).toBe(true)
          // The work was shared.
          expect(workers.filter((worker) => ran(worker).length > 0).length).toBeGreaterThan(1)
        }).pipe(Effect.provide(Layer.fresh(JobClient.layer).pipe(Layer.provideMerge(backend.layer(target)))))
      }), { timeout: 300_000 })

    it.live("rescue the jobs of a worker killed mid-job; none is lost", () =>
      Effect.gen(function*() {
        const target = backend.fresh()
        const n = 300
        yield* Effect.gen(function*() {
          yield* enqueue(n)
          const env = {
            STORE: backend.store,
            TARGET: target,
            SLEEP_MS: "100",
            WORKER_OPTIONS: JSON.stringify({
              concurrency: 4,
              prefetch: 4,
              leaseDuration: "2 seconds",
              heartbeatInterval: "500 millis",
              rescueInterval: "500 millis"
            })
          }
          // The victim starts alone, so it surely holds jobs when it is killed; the others
          // start after, and must find and finish what it left.
          const victim = spawnWorker(env)
          yield* Effect.promise(() =>
            new Promise<void>((resolve) => {
              const check = () => (ran(victim).length >= 8 ? resolve() : setTimeout(check, 20))
              check()
            })
          )
          victim.child.kill("SIGKILL")
          expect(yield* Effect.promise(() => victim.exited)).toBe(null)
          const workers = [victim, ...Array.from({ length: 3 }, () => spawnWorker(env))]
          yield* awaitCompleted(n, "120 seconds")
          yield* stopAll(workers.slice(1))
          const store = yield* JobStore
          const jobs = yield* store.list({ queue: "mp", limit: n })
          expect(jobs.length).toBe(n)
          expect(jobs.every((job) => job.state === "completed")).toBe(true)
          const rescued = jobs.filter((job) => job.errors.some((error) => error.kind === "lease-expired"))
          expect(rescued.length).toBeGreaterThan(0)
          const survivors = countBy(workers.slice(1).flatMap(ran))
          // Every job the killed worker held was run again by a survivor.
          for (const job of rescued) expect(survivors.get(JSON.parse(job.payload).i)).toBeGreaterThanOrEqual(1)
        }).pipe(Effect.provide(Layer.fresh(JobClient.layer).pipe(Layer.provideMerge(backend.layer(target)))))
      }), { timeout: 180_000 })
  })
}

describe("worker processes on postgresql", () => {
  it.live("reconnect after their connections are terminated, and finish every job", () =>
    Effect.gen(function*() {
      const target = freshSchema("mp_terminate")
      const n = 4000
      yield* Effect.gen(function*() {
        const workers = Array.from({ length: 4 }, () =>
          spawnWorker({
            STORE: "pg",
            TARGET: target,
            SLEEP_MS: "2",
            WORKER_OPTIONS: JSON.stringify({
              concurrency: 8,
              leaseDuration: "3 seconds",
              heartbeatInterval: "1 second",
              rescueInterval: "1 second"
            })
          }))
        // Connections are terminated while every worker runs, not while one still starts (its
        // startup would fail, as it should, with its migration's connection gone).
        yield* Effect.sync(() => workers.every((worker) => worker.lines.includes("started"))).pipe(
          Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (started) => started, times: 600 })
        )
        expect(workers.map((worker) => worker.lines.includes("started")), exitReport(workers)).toEqual([true, true, true, true])
        yield* enqueue(n)
        yield* awaitCompleted(n / 4, "60 seconds")
        const sql = yield* SqlClient.SqlClient
        const terminated = yield* sql<{ pid: number }>`
          SELECT pg_terminate_backend(pid) AS pid FROM pg_stat_activity
          WHERE application_name LIKE 'conveyor-mp%' AND pid <> pg_backend_pid()`
        expect(terminated.length).toBeGreaterThanOrEqual(4)
        yield* awaitCompleted(n, "120 seconds")
        const codes = yield* stopAll(workers)
        expect(codes, exitReport(workers)).toEqual([0, 0, 0, 0])
        const store = yield* JobStore
        const counts = (yield* store.counts).filter((c) => c.queue === "mp")
        expect(counts).toEqual([{ queue: "mp", state: "completed", count: n }])
        const runs = countBy(workers.flatMap(ran))
        expect(runs.size).toBe(n)
      }).pipe(Effect.provide(Layer.fresh(JobClient.layer).pipe(Layer.provideMerge(pgStoreLayer(target)))))
    }), { timeout: 240_000 })
})
