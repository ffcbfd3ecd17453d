/**
 * Cron across worker processes on one database: every process runs the same every-second
 * schedule, yet each tick becomes exactly one job, run once, and no tick between the first and
 * the last is lost. Real processes, real databases, real time.
 */
import { describe, expect, it } from "@effect/vitest"
import { DateTime, Effect, Layer, Option, Schedule } from "effect"
import { JobContext, JobStore } from "conveyor"
import { freshSchema, freshSqliteFile, pgStoreLayer, sqliteStoreLayer } from "./databases.js"
import { exitReport, spawnFixture, stopAll } from "./processes.js"

const spawnCronWorker = (env: Record<string, string>) => spawnFixture("cronProcess.ts", env)

/** The schedule's jobs: the tick each carries (from its JobContext), and its state. */
const cronJobs = Effect.gen(function*() {
  const store = yield* JobStore
  const jobs = yield* store.list({ queue: "cron_mp", limit: 10_000 })
  return jobs.map((job) => {
    const cron = JobContext.fromRecord(job, "test").cron
    expect(Option.isSome(cron) && cron.value.schedule).toBe("every-second")
    return { tick: Option.isSome(cron) ? DateTime.toEpochMillis(cron.value.tick) : NaN, state: job.state, runAt: job.runAt }
  })
})

const completedTicks = Effect.map(cronJobs, (jobs) => jobs.filter((job) => job.state === "completed").length)

const countBy = (values: ReadonlyArray<string>) => {
  const counts = new Map<string, number>()
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1)
  return counts
}

const backends = [
  { name: "postgresql", store: "pg", processes: 4, fresh: () => freshSchema("cron_mp"), layer: pgStoreLayer },
  { name: "sqlite (one file)", store: "sqlite", processes: 2, fresh: () => freshSqliteFile("cron_mp"), layer: sqliteStoreLayer }
] as const

for (const backend of backends) {
  describe(`cron across ${backend.processes} worker processes on ${backend.name}`, () => {
    it.live("enqueues and runs every tick of an every-second schedule exactly once", () =>
      Effect.gen(function*() {
        const target = backend.fresh()
        yield* Effect.gen(function*() {
          yield* JobStore // migrated before the processes start
          const workers = Array.from({ length: backend.processes }, () =>
            spawnCronWorker({ STORE: backend.store, TARGET: target }))
          yield* completedTicks.pipe(
            Effect.repeat({ schedule: Schedule.spaced("250 millis"), until: (done) => done >= 22 }),
            Effect.timeoutFail({ duration: "90 seconds", onTimeout: () => new Error("fewer than 22 ticks ran in 90 s") })
          )
          const codes = yield* stopAll(workers)
          expect(codes, exitReport(workers)).toEqual(Array.from({ length: backend.processes }, () => 0))

          const jobs = (yield* cronJobs).sort((a, b) => a.tick - b.tick)
          expect(jobs.length).toBeGreaterThanOrEqual(22)
          // One job per tick, at its own tick time, and no second missing between first and last.
          expect(new Set(jobs.map((job) => job.tick)).size).toBe(jobs.length)
          expect(jobs.every((job) => job.runAt === job.tick && job.tick % 1000 === 0)).toBe(true)
          expect(jobs.at(-1)!.tick - jobs[0]!.tick).toBe((jobs.length - 1) * 1000)

          const lines = workers.flatMap((worker) => worker.lines)
          // Each tick was won once, though several processes offered it.
          const won = countBy(lines.filter((line) => line.endsWith(" won")).map((line) => line.split(" ")[1]!))
          const offered = countBy(lines.filter((line) => line.startsWith("offered ")).map((line) => line.split(" ")[1]!))
          expect(won.size).toBe(jobs.length)
          expect([...won.values()].every((count) => count === 1)).toBe(true)
          expect([...offered.values()].some((count) => count > 1)).toBe(true)
          expect(workers.every((worker) => worker.lines.some((line) => line.startsWith("offered ")))).toBe(true)
          // Each completed tick's handler ran once, on whichever process claimed it.
          const ran = countBy(lines.filter((line) => line.startsWith("ran ")).map((line) => line.slice(4)))
          const completed = jobs.filter((job) => job.state === "completed")
          for (const job of completed) expect(ran.get(DateTime.formatIso(DateTime.unsafeMake(job.tick)))).toBe(1)
          expect([...ran.values()].every((count) => count === 1)).toBe(true)
        }).pipe(Effect.provide(Layer.fresh(backend.layer(target))))
      }), { timeout: 150_000 })
  })
}
