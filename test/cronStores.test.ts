/**
 * Cron on the SQL stores, on the TestClock: the last tick lives in the database, so restarts
 * neither repeat nor lose ticks, and the overlap policy holds through the store's unique keys.
 * (The multi-process, real-time tests are in cronMultiProcess.test.ts.)
 */
import { describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Option, Schema, TestClock } from "effect"
import { CronSchedule, Job, JobStore, Settlement } from "conveyor"
import { advanceAwaiting, at, hours, minutes, startScheduler, ticksOf } from "./cronHelpers.js"
import { freshSchema, freshSqliteFile, pgStoreLayer, sqliteStoreLayer } from "./databases.js"

const Digest = Job.make({ name: "digest", queue: "digests", payload: Schema.Struct({ n: Schema.Number }) })

const databases = [
  { name: "sqlite", layer: () => sqliteStoreLayer(freshSqliteFile("cron")) },
  { name: "postgresql", layer: () => pgStoreLayer(freshSchema("cron")) }
] as const

for (const database of databases) {
  describe(`cron on ${database.name}`, () => {
    layer(database.layer(), { timeout: 60_000 })((it) => {
      it.scoped("a restart repeats no tick; skip drops the missed ones, backfill enqueues those in its window", () =>
        Effect.gen(function*() {
          yield* TestClock.setTime(at("2026-01-01T00:00:00Z").epochMillis)
          const schedules = [
            CronSchedule.make({ name: "ten-skip", cron: "*/10 * * * *", job: Digest, payload: { n: 1 } }),
            CronSchedule.make({
              name: "ten-backfill",
              cron: "*/10 * * * *",
              job: Digest,
              payload: { n: 2 },
              catchUp: CronSchedule.backfill("30 minutes")
            })
          ]
          const first = yield* startScheduler(schedules)
          yield* advanceAwaiting(schedules, minutes(20), minutes(10))
          yield* first.stop
          yield* TestClock.adjust(hours(1) + minutes(5)) // every worker down
          const second = yield* startScheduler(schedules)
          yield* advanceAwaiting(schedules, minutes(5), minutes(5))
          yield* second.stop
          yield* startScheduler(schedules) // an immediate restart
          yield* advanceAwaiting(schedules, minutes(10), minutes(10))
          expect(yield* ticksOf("ten-skip")).toEqual([
            "2026-01-01T00:10:00.000Z",
            "2026-01-01T00:20:00.000Z",
            "2026-01-01T01:30:00.000Z",
            "2026-01-01T01:40:00.000Z"
          ])
          expect(yield* ticksOf("ten-backfill")).toEqual([
            "2026-01-01T00:10:00.000Z",
            "2026-01-01T00:20:00.000Z",
            "2026-01-01T01:00:00.000Z", // the window reaches back 30 minutes from 01:25
            "2026-01-01T01:10:00.000Z",
            "2026-01-01T01:20:00.000Z",
            "2026-01-01T01:30:00.000Z",
            "2026-01-01T01:40:00.000Z"
          ])
          const store = yield* JobStore
          const last = (yield* store.cronLastTicks).filter((row) => row.schedule.startsWith("ten-"))
          expect(last.map((row) => row.tick)).toEqual([at("2026-01-01T01:40:00Z").epochMillis, at("2026-01-01T01:40:00Z").epochMillis])
        }))

      it.scoped("overlap skip: no new job while the schedule's previous one is live", () =>
        Effect.gen(function*() {
          yield* TestClock.setTime(at("2026-01-01T00:00:00Z").epochMillis)
          const schedules = [
            CronSchedule.make({ name: "minute-skip", cron: "* * * * *", job: Digest, payload: { n: 3 }, overlap: "skip" })
          ]
          yield* startScheduler(schedules)
          yield* advanceAwaiting(schedules, minutes(3), minutes(1)) // nobody runs the 00:01 job: 00:02 and 00:03 are skipped
          expect(yield* ticksOf("minute-skip")).toEqual(["2026-01-01T00:01:00.000Z"])
          const store = yield* JobStore
          const { jobs } = yield* store.claim({
            workerId: "w",
            queues: [{ queue: "digests", limit: 10 }],
            leaseDuration: Duration.seconds(30)
          })
          const claimed = jobs.filter((job) => job.runAt === at("2026-01-01T00:01:00Z").epochMillis)
          expect(claimed.length).toBe(1)
          yield* store.settle([Settlement.Complete({ id: claimed[0]!.id, token: claimed[0]!.leaseToken, result: null })])
          yield* advanceAwaiting(schedules, minutes(1), minutes(1))
          expect(yield* ticksOf("minute-skip")).toEqual(["2026-01-01T00:01:00.000Z", "2026-01-01T00:04:00.000Z"])
          const last = (yield* store.cronLastTicks).find((row) => row.schedule === "minute-skip")
          expect(Option.fromNullable(last?.tick)).toEqual(Option.some(at("2026-01-01T00:04:00Z").epochMillis))
        }))
    })
  })
}
