/**
 * Several worker processes on one database: every job completes exactly once; a worker killed
 * with SIGKILL mid-job has its jobs rescued by the others; workers whose PostgreSQL connections
 * are terminated reconnect and finish. Real processes, real databases, real time.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { type Duration, Effect, Layer, Schedule } from "effect"
import { JobClient, JobStore } from "conveyor"
import { MultiProcessJob } from "./fixtures/workerProcess.js"
import { freshSchema, freshSqliteFile, pgStoreLayer, pgUrl, sqliteStoreLayer } from "./databases.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const children: Array<ChildProcess> = []

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL")
})

interface Spawned {
  readonly child: ChildProcess
  readonly ran: Array<number>
  readonly exited: Promise<number | null>
}

const spawnWorker = (env: Record<string, string>): Spawned => {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/workerProcess.ts"], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: pgUrl, ...env },
    stdio: ["ignore", "pipe", "inherit"]
  })
  children.push(child)
  const ran: Array<number> = []
  let pending = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    const lines = (pending + chunk.toString("utf8")).split("\n")
    pending = lines.pop()!
    for (const line of lines) if (line.startsWith("ran ")) ran.push(Number(line.slice(4)))
  })
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, ran, exited }
}

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

const stopAll = (workers: ReadonlyArray<Spawned>) =>
  Effect.promise(() => {
    for (const worker of workers) if (worker.child.exitCode === null) worker.child.kill("SIGTERM")
    return Promise.all(workers.map((worker) => worker.exited))
  })

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
          expect(codes).toEqual([0, 0, 0, 0])
          const runs = countBy(workers.flatMap((worker) => worker.ran))
          expect(runs.size).toBe(n)
          expect([...runs.values()].every((count) => count === 1)).toBe(true)
          // The work was shared.
          expect(workers.filter((worker) => worker.ran.length > 0).length).toBeGreaterThan(1)
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
              const check = () => (victim.ran.length >= 8 ? resolve() : setTimeout(check, 20))
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
          const survivors = countBy(workers.slice(1).flatMap((worker) => worker.ran))
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
        yield* enqueue(n)
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
        yield* awaitCompleted(n / 4, "60 seconds")
        const sql = yield* SqlClient.SqlClient
        const terminated = yield* sql<{ pid: number }>`
          SELECT pg_terminate_backend(pid) AS pid FROM pg_stat_activity
          WHERE application_name LIKE 'conveyor-mp%' AND pid <> pg_backend_pid()`
        expect(terminated.length).toBeGreaterThanOrEqual(4)
        yield* awaitCompleted(n, "120 seconds")
        const codes = yield* stopAll(workers)
        expect(codes).toEqual([0, 0, 0, 0])
        const store = yield* JobStore
        const counts = (yield* store.counts).filter((c) => c.queue === "mp")
        expect(counts).toEqual([{ queue: "mp", state: "completed", count: n }])
        const runs = countBy(workers.flatMap((worker) => worker.ran))
        expect(runs.size).toBe(n)
      }).pipe(Effect.provide(Layer.fresh(JobClient.layer).pipe(Layer.provideMerge(pgStoreLayer(target)))))
    }), { timeout: 240_000 })
})
