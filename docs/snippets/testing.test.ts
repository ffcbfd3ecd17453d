/**
 * docs/testing.md: testing your jobs with `conveyor/testing`. These tests run with the suite.
 */
import { expect, it } from "@effect/vitest"
import { Context, DateTime, Effect, Exit, Fiber, Layer, Option, Schedule, Schema, TestClock } from "effect"
import { CronSchedule, CronScheduler, Job, JobClient, JobContext, Worker } from "conveyor"
import * as Testing from "conveyor/testing"

class QuotaExceeded extends Schema.TaggedError<QuotaExceeded>()("QuotaExceeded", {}) {}

class Greeter extends Context.Tag("app/Greeter")<Greeter, { readonly greet: (name: string) => string }>() {}

const Greet = Job.make({
  name: "greet",
  payload: Schema.Struct({ name: Schema.String }),
  success: Schema.String,
  error: QuotaExceeded,
  maxAttempts: 3,
  backoff: Schedule.spaced("10 seconds")
})

const GreetHandler = Greet.handler(({ name }) =>
  Effect.gen(function*() {
    const greeter = yield* Greeter
    const job = yield* JobContext
    if (name === "everyone") return yield* new QuotaExceeded()
    return `${greeter.greet(name)} (for ${Option.getOrElse(job.tenantId, () => "nobody")})`
  })
)

// #region inline
it.effect("runInline: one handler, once, with its JobContext and job layer", () =>
  Effect.gen(function*() {
    const GreeterLive = Layer.succeed(Greeter, { greet: (name) => `hello ${name}` })
    // The payload goes through its Schema and JSON, as it would through the store.
    const exit = yield* Testing.runInline(GreetHandler, { name: "ada" }, { jobLayer: GreeterLive, tenantId: "ws_1" })
    expect(exit).toStrictEqual(Exit.succeed("hello ada (for ws_1)"))

    const failed = yield* Testing.runInline(GreetHandler, { name: "everyone" }, { jobLayer: GreeterLive })
    expect(Exit.isFailure(failed)).toBe(true)
  }))
// #endregion inline

// #region worker
const attempts: Array<number> = []
const AlwaysOverQuota = Greet.handler(() =>
  Effect.flatMap(JobContext, (job) => {
    attempts.push(job.attempt)
    return Effect.fail(new QuotaExceeded())
  })
)
/** A real worker on the in-memory store, with the same semantics as the SQL stores. */
const WorkerTest = Worker.layer({ handlers: [AlwaysOverQuota] }).pipe(Layer.provideMerge(Testing.layer))

it.scoped("a worker on the in-memory store retries on the backoff, driven by the TestClock", () =>
  Effect.gen(function*() {
    const finished = yield* Testing.collectFinished(3) // subscribe before enqueueing
    const id = yield* JobClient.pipe(Effect.flatMap((jobs) => jobs.enqueue(Greet, { name: "everyone" })))
    const waiting = yield* Effect.fork(finished)

    // No sleeping: move the clock past each backoff delay.
    yield* TestClock.adjust("10 seconds")
    yield* TestClock.adjust("10 seconds")
    const events = yield* Fiber.join(waiting)

    expect(events.map((event) => event.outcome)).toEqual(["Retry", "Retry", "Discard"])
    expect(attempts).toEqual([1, 2, 3])
    expect((yield* Testing.getJob(id)).state).toBe("discarded")
  }).pipe(Effect.provide(WorkerTest)))
// #endregion worker

// #region cron
const Digest = Job.make({ name: "digest", payload: Schema.Struct({ day: Schema.String }) })
const digestDays: Array<string> = []
const DigestHandler = Digest.handler(({ day }) => Effect.sync(() => void digestDays.push(day)))
const NightlyDigest = CronSchedule.make({
  name: "nightly-digest",
  cron: "0 6 * * *",
  job: Digest,
  payload: (tick) => ({ day: DateTime.formatIsoDate(tick) })
})
const CronTest = Layer.mergeAll(
  Worker.layer({ handlers: [DigestHandler] }),
  CronScheduler.layer({ schedules: [NightlyDigest] })
).pipe(Layer.provideMerge(Testing.layer))

it.scoped("a cron schedule fires when the TestClock reaches its tick", () =>
  Effect.gen(function*() {
    // Set the clock first: the scheduler reads it when it starts.
    yield* TestClock.setTime(DateTime.toEpochMillis(DateTime.unsafeMake("2026-01-01T05:59:00Z")))
    yield* Effect.gen(function*() {
      const finished = yield* Testing.collectFinished(1)
      const waiting = yield* Effect.fork(finished)
      for (let step = 0; step < 6; step++) yield* TestClock.adjust("10 seconds") // to 06:00
      const [event] = yield* Fiber.join(waiting)
      expect(event?.job.trigger).toBe("cron")
      expect(digestDays).toEqual(["2026-01-01"])
    }).pipe(Effect.provide(CronTest)) // built now, at 05:59
  }))
// #endregion cron
