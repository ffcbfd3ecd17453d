/** Helpers for the cron tests: schedulers that can be restarted, and the jobs they enqueued. */
import { expect } from "@effect/vitest"
import { Chunk, Clock, Context, DateTime, Effect, Exit, Layer, Option, Schedule, Scope, TestClock, TestServices } from "effect"
import { CronSchedule, CronScheduler, JobContext, JobStore } from "conveyor"

export const iso = (millis: number) => DateTime.formatIso(DateTime.unsafeMake(millis))
export const at = (isoTime: string) => DateTime.unsafeMake(isoTime)

/** Run a scheduler in a scope of its own, so a test can stop it and start another (a restart). */
export const startScheduler = (schedules: ReadonlyArray<CronSchedule.AnyCronSchedule>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(CronScheduler.layer({ schedules }), scope)
    return { scheduler: Context.get(context, CronScheduler.CronScheduler), stop: Scope.close(scope, Exit.void) }
  })

/** The jobs a schedule enqueued, in tick order, with the tick their JobContext reports. */
export const cronJobs = (schedule: string) =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const jobs = yield* store.list({ limit: 100_000 })
    return jobs
      .map((job) => ({ job, cron: JobContext.fromRecord(job, "test").cron }))
      .flatMap(({ cron, job }) =>
        Option.isSome(cron) && cron.value.schedule === schedule
          ? [{ job, tick: DateTime.toEpochMillis(cron.value.tick) }]
          : []
      )
      .sort((a, b) => a.tick - b.tick)
  })

export const ticksOf = (schedule: string) =>
  Effect.map(cronJobs(schedule), (jobs) => jobs.map(({ job, tick }) => {
    expect(job.runAt).toBe(tick) // every job keeps its own tick time as its run-at
    return iso(tick)
  }))

/** Move the TestClock forward in steps, so every sleeping fiber wakes at its own time. */
export const advance = (total: number, step = 1000) =>
  Effect.gen(function*() {
    for (let moved = 0; moved < total; moved += step) yield* TestClock.adjust(step)
  })

export const minutes = (n: number) => n * 60_000
export const hours = (n: number) => n * 3_600_000

/**
 * Wait, in real time, until each of these schedules' fibers sleeps until its next tick. On a
 * store that does real I/O (PostgreSQL) a scheduler is not suspended on the TestClock while it
 * waits for the database, so a test must not move the clock on before the fiber sleeps again.
 */
export const awaitSchedulersAsleep = (schedules: ReadonlyArray<CronSchedule.AnyCronSchedule>) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const expected = yield* Effect.forEach(schedules, (schedule) =>
      Effect.map(CronSchedule.nextTicks(schedule, { after: DateTime.unsafeMake(now), count: 1 }), ([next]) =>
        DateTime.toEpochMillis(next!)))
    const testClock = yield* TestClock.testClock() // taken here: the live services have no TestClock
    const asleep = Effect.map(testClock.sleeps, (sleeps) => {
      const pending = Chunk.toReadonlyArray(sleeps)
      return expected.every((instant) =>
        pending.filter((sleep) => sleep === instant).length >= expected.filter((other) => other === instant).length
      )
    })
    yield* TestServices.provideLive(
      asleep.pipe(
        Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (done) => done }),
        Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("schedulers did not go back to sleep") })
      )
    )
  }).pipe(Effect.orDie)

/** `advance`, waiting after each step for the schedulers to sleep again. */
export const advanceAwaiting = (schedules: ReadonlyArray<CronSchedule.AnyCronSchedule>, total: number, step: number) =>
  Effect.gen(function*() {
    yield* awaitSchedulersAsleep(schedules)
    for (let moved = 0; moved < total; moved += step) {
      yield* TestClock.adjust(step)
      yield* awaitSchedulersAsleep(schedules)
    }
  })
