import { describe, expect, it } from "@effect/vitest"
import { DateTime, Effect, Exit, Layer, Metric, Option, Ref, Schema, Scope, TestClock } from "effect"
import {
  CronSchedule,
  CronScheduler,
  InvalidSchedule,
  Job,
  JobContext,
  JobStore,
  StoreError,
  Worker
} from "conveyor"
import * as Metrics from "../src/internal/metrics.js"
import * as Testing from "conveyor/testing"
import { advance, at, cronJobs, hours, iso, minutes, startScheduler, ticksOf } from "./cronHelpers.js"
import { finishedJobs, start } from "./helpers.js"

const Report = Job.make({
  name: "report",
  queue: "reports",
  payload: Schema.Struct({ day: Schema.String })
})

describe("CronSchedule.nextTicks", () => {
  const next = (cron: string, timeZone: string, after: string, count: number) =>
    CronSchedule.nextTicks(
      CronSchedule.make({ name: "preview", cron, timeZone, job: Report, payload: { day: "x" } }),
      { after: at(after), count }
    ).pipe(Effect.map((ticks) => ticks.map((tick) => DateTime.formatIsoZoned(tick))))

  it.effect("reads 6-field expressions with seconds, and weekdays, in the schedule's zone", () =>
    Effect.gen(function*() {
      expect(yield* next("*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z", 3)).toEqual([
        "2026-01-01T00:00:20.000+00:00[UTC]",
        "2026-01-01T00:00:40.000+00:00[UTC]",
        "2026-01-01T00:01:00.000+00:00[UTC]"
      ])
      // 2026-01-01 is a Thursday: Friday, then Monday.
      expect(yield* next("0 9 * * 1-5", "Asia/Tokyo", "2026-01-01T00:00:00Z", 2)).toEqual([
        "2026-01-02T09:00:00.000+09:00[Asia/Tokyo]",
        "2026-01-05T09:00:00.000+09:00[Asia/Tokyo]"
      ])
      expect(yield* next("0 3 1 * *", "America/Los_Angeles", "2026-01-15T00:00:00Z", 2)).toEqual([
        "2026-02-01T03:00:00.000-08:00[America/Los_Angeles]",
        "2026-03-01T03:00:00.000-08:00[America/Los_Angeles]"
      ])
    }))

  it.effect("keeps wall-clock time across DST changes, in both hemispheres", () =>
    Effect.gen(function*() {
      expect(yield* next("0 9 * * *", "America/New_York", "2026-03-07T00:00:00Z", 2)).toEqual([
        "2026-03-07T09:00:00.000-05:00[America/New_York]",
        "2026-03-08T09:00:00.000-04:00[America/New_York]"
      ])
      // Sydney leaves summer time on the first Sunday of April.
      expect(yield* next("0 9 * * *", "Australia/Sydney", "2026-04-04T00:00:00Z", 2)).toEqual([
        "2026-04-05T09:00:00.000+10:00[Australia/Sydney]",
        "2026-04-06T09:00:00.000+10:00[Australia/Sydney]"
      ])
    }))

  it.effect("spring-forward gap: a time that does not exist fires once, shifted by the gap", () =>
    Effect.gen(function*() {
      // Paris, 2026-03-29: 02:00 becomes 03:00, so 02:30 does not exist that night.
      expect(yield* next("30 2 * * *", "Europe/Paris", "2026-03-27T12:00:00Z", 3)).toEqual([
        "2026-03-28T02:30:00.000+01:00[Europe/Paris]",
        "2026-03-29T03:30:00.000+02:00[Europe/Paris]",
        "2026-03-30T02:30:00.000+02:00[Europe/Paris]"
      ])
      // Half-hourly: the gap's two ticks merge into the real 03:00 and 03:30, nothing fires twice.
      expect(yield* next("*/30 * * * *", "Europe/Paris", "2026-03-29T00:10:00Z", 4)).toEqual([
        "2026-03-29T01:30:00.000+01:00[Europe/Paris]",
        "2026-03-29T03:00:00.000+02:00[Europe/Paris]",
        "2026-03-29T03:30:00.000+02:00[Europe/Paris]",
        "2026-03-29T04:00:00.000+02:00[Europe/Paris]"
      ])
    }))

  it.effect("fall-back overlap: a repeated time fires once, at its first occurrence", () =>
    Effect.gen(function*() {
      // Paris, 2026-10-25: 03:00 becomes 02:00 again, so 02:00-02:59 happens twice.
      expect(yield* next("30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z", 2)).toEqual([
        "2026-10-25T02:30:00.000+02:00[Europe/Paris]",
        "2026-10-26T02:30:00.000+01:00[Europe/Paris]"
      ])
      expect(yield* next("*/30 * * * *", "Europe/Paris", "2026-10-24T23:10:00Z", 4)).toEqual([
        "2026-10-25T01:30:00.000+02:00[Europe/Paris]",
        "2026-10-25T02:00:00.000+02:00[Europe/Paris]",
        "2026-10-25T02:30:00.000+02:00[Europe/Paris]",
        "2026-10-25T03:00:00.000+01:00[Europe/Paris]"
      ])
      // Starting inside the second pass (02:10+01:00) never answers a tick in the past.
      expect(yield* next("*/30 * * * *", "Europe/Paris", "2026-10-25T01:10:00Z", 2)).toEqual([
        "2026-10-25T03:00:00.000+01:00[Europe/Paris]",
        "2026-10-25T03:30:00.000+01:00[Europe/Paris]"
      ])
      expect(yield* next("30 2 * * *", "Europe/Paris", "2026-10-25T01:10:00Z", 1)).toEqual([
        "2026-10-26T02:30:00.000+01:00[Europe/Paris]"
      ])
    }))
})

describe("CronScheduler", () => {
  it.scoped("fires a tick's job once, with trigger cron and the schedule and tick in its JobContext", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-01-01T01:59:00Z").epochMillis)
      const seen = yield* Ref.make<Array<{ payload: string; trigger: string; cron: Option.Option<unknown> }>>([])
      const handler = Report.handler(({ day }) =>
        Effect.gen(function*() {
          const ctx = yield* JobContext
          yield* Ref.update(seen, (all) => [...all, { payload: day, trigger: ctx.trigger, cron: ctx.cron }])
        })
      )
      const worker = yield* start(Worker.layer({ handlers: [handler] }))
      const done = yield* finishedJobs(worker, 1)
      yield* startScheduler([
        CronSchedule.make({
          name: "nightly-report",
          cron: "0 3 * * *",
          timeZone: "Europe/Paris",
          job: Report,
          payload: (tick) => ({ day: DateTime.formatIsoDateUtc(tick) + "/" + DateTime.getPart(tick, "hours") }),
          metadata: { owner: "finance" }
        })
      ])
      yield* advance(minutes(1), 10_000)
      const finished = yield* done
      expect(finished[0]!.outcome).toBe("Complete")
      yield* advance(minutes(10), minutes(1))
      expect(yield* Ref.get(seen)).toEqual([{
        payload: "2026-01-01/3", // the payload function sees the tick in the schedule's zone
        trigger: "cron",
        cron: Option.some({ schedule: "nightly-report", tick: at("2026-01-01T02:00:00Z") })
      }])
      const [only] = yield* cronJobs("nightly-report")
      expect(only!.job).toMatchObject({ trigger: "cron", queue: "reports", metadata: { owner: "finance" } })
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("fires across a spring-forward and a fall-back night in the schedule's zone", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-03-27T12:00:00Z").epochMillis)
      const { stop } = yield* startScheduler([
        CronSchedule.make({ name: "paris-0230", cron: "30 2 * * *", timeZone: "Europe/Paris", job: Report, payload: { day: "d" } })
      ])
      yield* advance(hours(72), hours(6))
      expect(yield* ticksOf("paris-0230")).toEqual([
        "2026-03-28T01:30:00.000Z",
        "2026-03-29T01:30:00.000Z", // 03:30 local: 02:30 did not exist
        "2026-03-30T00:30:00.000Z"
      ])
      yield* stop
      yield* TestClock.setTime(at("2026-10-24T23:10:00Z").epochMillis)
      yield* startScheduler([
        CronSchedule.make({ name: "paris-half-hourly", cron: "*/30 * * * *", timeZone: "Europe/Paris", job: Report, payload: { day: "d" } })
      ])
      yield* advance(hours(3), minutes(30))
      expect(yield* ticksOf("paris-half-hourly")).toEqual([
        "2026-10-24T23:30:00.000Z",
        "2026-10-25T00:00:00.000Z",
        "2026-10-25T00:30:00.000Z", // 02:30+02:00; the repeated 02:00 and 02:30 (+01:00) do not fire again
        "2026-10-25T02:00:00.000Z"
      ])
    }).pipe(Effect.provide(Testing.layer)))

  const everyTenMinutes = (catchUp?: CronSchedule.CatchUp) =>
    CronSchedule.make({
      name: "every-ten",
      cron: "*/10 * * * *",
      job: Report,
      payload: (tick) => ({ day: DateTime.formatIso(tick) }),
      ...(catchUp === undefined ? {} : { catchUp })
    })

  it.scoped("after a restart with downtime, skips the missed ticks and never repeats one (catch-up: skip)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-01-01T00:00:00Z").epochMillis)
      const first = yield* startScheduler([everyTenMinutes()])
      yield* advance(minutes(30), minutes(10))
      yield* first.stop
      yield* TestClock.adjust(hours(2) + minutes(5)) // every worker down
      const second = yield* startScheduler([everyTenMinutes()])
      yield* advance(minutes(5), minutes(5))
      expect(yield* ticksOf("every-ten")).toEqual([
        "2026-01-01T00:10:00.000Z",
        "2026-01-01T00:20:00.000Z",
        "2026-01-01T00:30:00.000Z",
        "2026-01-01T02:40:00.000Z"
      ])
      // Restarting right after a tick enqueues nothing twice.
      yield* second.stop
      yield* startScheduler([everyTenMinutes()])
      yield* advance(minutes(10), minutes(10))
      expect((yield* ticksOf("every-ten")).slice(3)).toEqual(["2026-01-01T02:40:00.000Z", "2026-01-01T02:50:00.000Z"])
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("after a restart with downtime, backfills the ticks within the window, in order (catch-up: backfill)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-01-01T00:00:00Z").epochMillis)
      const schedule = everyTenMinutes(CronSchedule.backfill("1 hour"))
      const first = yield* startScheduler([schedule])
      yield* advance(minutes(30), minutes(10))
      yield* first.stop
      yield* TestClock.adjust(hours(2) + minutes(5))
      const second = yield* startScheduler([schedule])
      yield* Effect.yieldNow()
      const backfilled = yield* cronJobs("every-ten")
      expect(backfilled.map(({ tick }) => iso(tick))).toEqual([
        "2026-01-01T00:10:00.000Z",
        "2026-01-01T00:20:00.000Z",
        "2026-01-01T00:30:00.000Z",
        // missed ticks older than 1 hour (00:40 to 01:30) are dropped; these come back in order
        "2026-01-01T01:40:00.000Z",
        "2026-01-01T01:50:00.000Z",
        "2026-01-01T02:00:00.000Z",
        "2026-01-01T02:10:00.000Z",
        "2026-01-01T02:20:00.000Z",
        "2026-01-01T02:30:00.000Z"
      ])
      const ids = backfilled.slice(3).map(({ job }) => Number(job.id))
      expect(ids).toEqual([...ids].sort((a, b) => a - b)) // enqueued oldest first
      expect(backfilled.slice(3).map(({ job }) => JSON.parse(job.payload).day)).toEqual(
        backfilled.slice(3).map(({ tick }) => iso(tick)) // each payload built from its own tick
      )
      yield* advance(minutes(5), minutes(5))
      yield* second.stop
      yield* startScheduler([schedule]) // no downtime: nothing repeats
      yield* advance(minutes(10), minutes(10))
      expect((yield* ticksOf("every-ten")).slice(8)).toEqual([
        "2026-01-01T02:30:00.000Z",
        "2026-01-01T02:40:00.000Z",
        "2026-01-01T02:50:00.000Z"
      ])
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("does not backfill a schedule that never fired before", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-01-01T05:05:00Z").epochMillis)
      yield* startScheduler([everyTenMinutes(CronSchedule.backfill("1 hour"))])
      yield* advance(minutes(5), minutes(5))
      expect(yield* ticksOf("every-ten")).toEqual(["2026-01-01T05:10:00.000Z"])
    }).pipe(Effect.provide(Testing.layer)))

  const overlapRun = (overlap: CronSchedule.Overlap) =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-01-01T00:00:00Z").epochMillis)
      const Slow = Job.make({ name: "slow", payload: Schema.Struct({}) })
      const worker = yield* start(Worker.layer({ handlers: [Slow.handler(() => Effect.sleep("150 seconds"))] }))
      const scheduler = yield* startScheduler([
        CronSchedule.make({ name: "slow-every-minute", cron: "* * * * *", job: Slow, payload: {}, overlap })
      ])
      yield* advance(minutes(5), 10_000)
      const store = yield* JobStore
      const last = (yield* store.cronLastTicks).find((row) => row.schedule === "slow-every-minute")
      expect(last?.tick).toBe(at("2026-01-01T00:05:00Z").epochMillis) // skipped ticks still count as taken
      const ticks = yield* ticksOf("slow-every-minute")
      // Let the runs finish, so the worker's shutdown has nothing to wait for.
      yield* scheduler.stop
      while ((yield* worker.held) > 0) yield* TestClock.adjust("30 seconds")
      return ticks
    }).pipe(Effect.provide(Testing.layer))

  it.scoped("overlap skip: skips ticks while the previous run is still live", () =>
    Effect.gen(function*() {
      // The 00:01 run lasts until 00:03:30, so 00:02 and 00:03 are skipped; the 00:04 run covers 00:05.
      expect(yield* overlapRun("skip")).toEqual(["2026-01-01T00:01:00.000Z", "2026-01-01T00:04:00.000Z"])
    }))

  it.scoped("overlap allow: enqueues every tick even while a run is in progress", () =>
    Effect.gen(function*() {
      expect((yield* overlapRun("allow")).length).toBe(5)
    }))

  it.scoped("overlap allow still honours the job's own unique key", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-01-01T00:00:00Z").epochMillis)
      const Daily = Job.make({ name: "daily", payload: Schema.Struct({ day: Schema.String }), uniqueKey: ({ day }) => day })
      yield* startScheduler([
        CronSchedule.make({
          name: "hourly-daily",
          cron: "0 * * * *",
          job: Daily,
          payload: (tick) => ({ day: DateTime.formatIsoDate(tick) })
        })
      ])
      yield* advance(hours(3), hours(1)) // nobody runs the jobs: the day's key stays live
      const jobs = yield* cronJobs("hourly-daily")
      expect(jobs.map(({ tick }) => iso(tick))).toEqual(["2026-01-01T01:00:00.000Z"])
      expect(jobs[0]!.job.uniqueKey).toBe("daily:2026-01-01")
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("several workers sharing one store enqueue and run each tick exactly once", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-01-01T00:00:00Z").epochMillis)
      const Beat = Job.make({ name: "beat", payload: Schema.Struct({ tick: Schema.String }) })
      const runs = new Map<string, Array<string>>()
      const schedule = CronSchedule.make({
        name: "every-second",
        cron: "* * * * * *",
        job: Beat,
        payload: (tick) => ({ tick: DateTime.formatIso(tick) })
      })
      const offers = new Map<string, { offered: number; won: number }>()
      /** The shared store, counting each worker's offers of a tick and the ones it won. */
      const countingStore = (workerId: string) =>
        Layer.effect(
          JobStore,
          Effect.map(JobStore, (store) => ({
            ...store,
            enqueueCronTick: (tick: Parameters<typeof store.enqueueCronTick>[0]) =>
              Effect.tap(store.enqueueCronTick(tick), (won) => {
                const counts = offers.get(workerId) ?? { offered: 0, won: 0 }
                offers.set(workerId, { offered: counts.offered + 1, won: counts.won + (Option.isSome(won) ? 1 : 0) })
              })
          }))
        )
      const sent = Metric.taggedWithLabels(Metrics.sentMessages, Metrics.seriesOf(Beat.queue, Beat.name).sent)
      const sentBefore = (yield* Metric.value(sent)).count
      yield* Effect.forEach(["w1", "w2", "w3", "w4"], (workerId) =>
        Effect.gen(function*() {
          const handler = Beat.handler(({ tick }) => Effect.sync(() => runs.set(tick, [...(runs.get(tick) ?? []), workerId])))
          // One worker process: its worker and its scheduler, over the one store they all share.
          yield* Layer.build(
            Layer.merge(Worker.layer({ handlers: [handler], workerId }), CronScheduler.layer({ schedules: [schedule] })).pipe(
              Layer.provide(countingStore(workerId))
            )
          )
        }))
      yield* advance(25_000, 5000)
      const ticks = yield* ticksOf("every-second")
      expect(ticks.length).toBe(25)
      expect(new Set(ticks).size).toBe(25)
      expect(ticks[0]).toBe("2026-01-01T00:00:01.000Z")
      expect(ticks[24]).toBe("2026-01-01T00:00:25.000Z")
      expect([...runs.keys()].sort()).toEqual(ticks)
      expect([...runs.values()].every((ran) => ran.length === 1)).toBe(true)
      // Every worker offered every tick; the store let exactly one offer of each through.
      expect([...offers.values()].map((counts) => counts.offered)).toEqual([25, 25, 25, 25])
      expect([...offers.values()].reduce((sum, counts) => sum + counts.won, 0)).toBe(25)
      // Counted as sent once per tick, like any enqueue (messaging.client.sent.messages).
      expect((yield* Metric.value(sent)).count - sentBefore).toBe(25)
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("keeps going after a bad tick: a throwing payload is logged and dropped, a store outage retried", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-01-01T00:00:00Z").epochMillis)
      const failures = yield* Ref.make(0)
      const flakyStore = Layer.effect(
        JobStore,
        Effect.map(JobStore, (store) => ({
          ...store,
          // The store is down for the first three attempts at the 00:02 tick.
          enqueueCronTick: (tick: Parameters<typeof store.enqueueCronTick>[0]) =>
            Effect.flatMap(Ref.getAndUpdate(failures, (n) => n + 1), (n) =>
              tick.tick === at("2026-01-01T00:02:00Z").epochMillis && n < 3
                ? Effect.fail(new StoreError({ op: "enqueueCronTick", cause: new Error("connection refused") }))
                : store.enqueueCronTick(tick))
        }))
      )
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        CronScheduler.layer({
          schedules: [
            CronSchedule.make({
              name: "fragile",
              cron: "* * * * *",
              job: Report,
              payload: (tick) => {
                if (DateTime.getPartUtc(tick, "minutes") === 1) throw new Error("no report on minute 1")
                return { day: DateTime.formatIso(tick) }
              }
            })
          ]
        }).pipe(Layer.provide(flakyStore)),
        scope
      )
      yield* advance(minutes(4), 10_000)
      expect(yield* ticksOf("fragile")).toEqual([
        "2026-01-01T00:02:00.000Z", // late by the retries, but with its own tick time
        "2026-01-01T00:03:00.000Z",
        "2026-01-01T00:04:00.000Z"
      ])
      expect(yield* Ref.get(failures)).toBeGreaterThanOrEqual(3)
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("lists schedules with their last and next ticks; a schedule removed from code stops firing", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2026-01-01T00:00:30Z").epochMillis)
      const kept = CronSchedule.make({ name: "kept", cron: "* * * * *", timeZone: "Asia/Tokyo", job: Report, payload: { day: "k" } })
      const removed = CronSchedule.make({ name: "removed", cron: "* * * * *", job: Report, payload: { day: "r" }, overlap: "skip" })
      const first = yield* startScheduler([kept, removed])
      const before = yield* first.scheduler.list
      expect(before.map((s) => [s.name, Option.isNone(s.lastTick), DateTime.formatIsoZoned(s.nextTick)])).toEqual([
        ["kept", true, "2026-01-01T09:01:00.000+09:00[Asia/Tokyo]"],
        ["removed", true, "2026-01-01T00:01:00.000+00:00[UTC]"]
      ])
      expect(before[1]).toMatchObject({ cron: "* * * * *", timeZone: "UTC", job: "report", queue: "reports", overlap: "skip" })
      yield* advance(minutes(1), minutes(1))
      const after = yield* first.scheduler.list
      expect(after.map((s) => Option.map(s.lastTick, DateTime.formatIso))).toEqual([
        Option.some("2026-01-01T00:01:00.000Z"),
        Option.some("2026-01-01T00:01:00.000Z")
      ])
      expect(DateTime.formatIso(after[0]!.nextTick)).toBe("2026-01-01T00:02:00.000Z")
      yield* first.stop
      const second = yield* startScheduler([kept])
      yield* advance(minutes(3), minutes(1))
      expect((yield* ticksOf("kept")).length).toBe(4)
      expect(yield* ticksOf("removed")).toEqual(["2026-01-01T00:01:00.000Z"])
      expect((yield* second.scheduler.list).map((s) => s.name)).toEqual(["kept"])
    }).pipe(Effect.provide(Testing.layer)))

  describe("fails at start-up with a typed error naming the schedule", () => {
    const startWith = (options: Partial<CronSchedule.CronScheduleOptions<typeof Report.payload>>) =>
      startScheduler([CronSchedule.make({ name: "nightly", cron: "0 3 * * *", job: Report, payload: { day: "d" }, ...options })])
        .pipe(Effect.flip, Effect.provide(Testing.layer))

    it.scoped("an invalid expression", () =>
      Effect.gen(function*() {
        const error = yield* startWith({ cron: "61 * * * *" })
        expect(error).toBeInstanceOf(InvalidSchedule)
        expect(error).toMatchObject({ schedule: "nightly", reason: "expression" })
        expect(error.message).toBe(`cron schedule "nightly": invalid cron expression "61 * * * *": Expected a value between 0 and 59`)
        expect((yield* startWith({ cron: "0 3 * *" })).reason).toBe("expression")
        expect((yield* startWith({ cron: "0 0 30 2 *" })).message).toContain("never matches")
      }))

    it.scoped("an unknown time zone", () =>
      Effect.gen(function*() {
        const error = yield* startWith({ timeZone: "Europe/Pariss" })
        expect(error).toMatchObject({ _tag: "InvalidSchedule", schedule: "nightly", reason: "timeZone" })
        expect(error.message).toContain(`unknown time zone "Europe/Pariss"`)
      }))

    it.scoped("a payload its job rejects, a bad window, a bad name, a duplicate", () =>
      Effect.gen(function*() {
        expect(yield* startWith({ payload: { day: 3 } as never })).toMatchObject({ reason: "payload" })
        expect(yield* startWith({ catchUp: CronSchedule.backfill("0 seconds") })).toMatchObject({ reason: "catchUp" })
        expect(yield* startWith({ name: "bad name!" })).toMatchObject({ reason: "name", schedule: "bad name!" })
        const twice = CronSchedule.make({ name: "twice", cron: "0 3 * * *", job: Report, payload: { day: "d" } })
        const duplicate = yield* startScheduler([twice, twice]).pipe(Effect.flip, Effect.provide(Testing.layer))
        expect(duplicate).toMatchObject({ reason: "duplicate", schedule: "twice" })
      }))
  })

  it.effect("JobContext carries no cron entry for jobs that cron did not enqueue", () =>
    Effect.gen(function*() {
      const cronOf = Report.handler(() => Effect.map(JobContext, (ctx) => ctx.cron))
      // Metadata that merely looks like a cron entry does not make a queued job a cron job.
      const metadata = { "conveyor.cron": { schedule: "x", tick: "2026-01-01T00:00:00.000Z" } }
      expect(yield* Testing.runInline(cronOf, { day: "d" }, { trigger: "queue", metadata })).toEqual(Exit.succeed(Option.none()))
      expect(yield* Testing.runInline(cronOf, { day: "d" }, { trigger: "cron", metadata })).toEqual(
        Exit.succeed(Option.some({ schedule: "x", tick: at("2026-01-01T00:00:00Z") }))
      )
    }))
})
