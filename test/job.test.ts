import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Option, Schedule, Schema } from "effect"
import { Backoff, Job, JobContext, JobStore, Worker } from "conveyor"
import * as Testing from "conveyor/testing"

class Mailer extends Context.Tag("Mailer")<Mailer, { readonly send: (to: string) => Effect.Effect<void> }>() {}
class Flags extends Context.Tag("Flags")<Flags, { readonly beta: boolean }>() {}

const Welcome = Job.make({ name: "welcome", payload: Schema.Struct({ to: Schema.String }) })
const WelcomeHandler = Welcome.handler(({ to }) =>
  Effect.gen(function*() {
    const mailer = yield* Mailer
    const flags = yield* Flags
    if (flags.beta) yield* mailer.send(to)
  })
)

describe("Job", () => {
  it("carries its settings, with defaults", () => {
    const job = Job.make({ name: "report.build", payload: Schema.String })
    expect(job).toMatchObject({ name: "report.build", queue: "default", priority: 0, maxAttempts: 20 })
    expect(Duration.isFinite(job.timeout)).toBe(false)
  })

  it("makes a missing service a compile error where the worker is launched", () => {
    const MailerLive = Layer.succeed(Mailer, { send: () => Effect.void })
    const FlagsPerJob = Layer.effect(Flags, Effect.map(JobContext, (ctx) => ({ beta: ctx.tenantId._tag === "Some" })))

    // Flags comes per job, Mailer from the process: everything is provided.
    const complete: Layer.Layer<Worker.Worker, never, never> = Worker.layer({
      handlers: [WelcomeHandler],
      jobLayer: FlagsPerJob
    }).pipe(Layer.provide(MailerLive), Layer.provide(JobStore.layerMemory))

    // @ts-expect-error Mailer is provided by nobody
    const missingMailer: Layer.Layer<Worker.Worker, never, never> = Worker.layer({
      handlers: [WelcomeHandler],
      jobLayer: FlagsPerJob
    }).pipe(Layer.provide(JobStore.layerMemory))

    // @ts-expect-error the store is missing
    const missingStore: Layer.Layer<Worker.Worker, never, never> = Worker.layer({ handlers: [WelcomeHandler] }).pipe(
      Layer.provide(MailerLive),
      Layer.provide(Layer.succeed(Flags, { beta: true }))
    )
    expect([complete, missingMailer, missingStore].every(Layer.isLayer)).toBe(true)
  })

  it.effect("runs a handler inline with a JobContext and its job layer", () =>
    Effect.gen(function*() {
      const sent: Array<string> = []
      const exit = yield* Testing.runInline(WelcomeHandler, { to: "ada@example.com" }, {
        tenantId: "ws-1",
        jobLayer: Layer.effect(Flags, Effect.map(JobContext, (ctx) => ({ beta: Option.isSome(ctx.tenantId) })))
      }).pipe(Effect.provideService(Mailer, { send: (to) => Effect.sync(() => sent.push(to)) }))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(sent).toEqual(["ada@example.com"])
    }))
})

describe("Backoff", () => {
  it.effect("defaults to exponential with ±20% jitter, capped at an hour", () =>
    Effect.gen(function*() {
      for (const attempt of [1, 2, 3, 4, 5]) {
        const delay = Duration.toMillis(Option.getOrThrow(yield* Backoff.delayAfter(Backoff.defaultBackoff, attempt)))
        const expected = 1000 * 2 ** (attempt - 1)
        expect(delay).toBeGreaterThanOrEqual(expected * 0.8)
        expect(delay).toBeLessThanOrEqual(expected * 1.2)
      }
      const late = Duration.toMillis(Option.getOrThrow(yield* Backoff.delayAfter(Backoff.defaultBackoff, 30)))
      expect(late).toBeLessThanOrEqual(3_600_000 * 1.2)
      expect(late).toBeGreaterThanOrEqual(3_600_000 * 0.8)
    }))

  it.effect("follows any Schedule, and ends when the schedule ends", () =>
    Effect.gen(function*() {
      const fixed = Schedule.spaced("5 seconds").pipe(Schedule.intersect(Schedule.recurs(2)))
      expect(yield* Backoff.delayAfter(fixed, 1)).toEqual(Option.some(Duration.seconds(5)))
      expect(yield* Backoff.delayAfter(fixed, 2)).toEqual(Option.some(Duration.seconds(5)))
      expect(yield* Backoff.delayAfter(fixed, 3)).toEqual(Option.none())
      const linear = Schedule.linear("1 second")
      expect(Option.map(yield* Backoff.delayAfter(linear, 3), Duration.toMillis)).toEqual(Option.some(3000))
    }))
})
