import { NodeRuntime } from "@effect/platform-node"
import { DateTime, Effect, Layer, Option, Schema } from "effect"
import { CronSchedule, CronScheduler, Job, JobContext, Worker } from "conveyor"
import * as Sqlite from "conveyor/sqlite"

// 1. A job like any other.
const NightlyDigest = Job.make({
  name: "nightly_digest",
  queue: "digests",
  payload: Schema.Struct({ day: Schema.String })
})

const NightlyDigestHandler = NightlyDigest.handler(({ day }) =>
  Effect.gen(function*() {
    // A cron job's context names its schedule and the tick it was enqueued for.
    const { cron } = yield* JobContext
    if (Option.isSome(cron)) {
      yield* Effect.logInfo(`digest for ${day}: ${cron.value.schedule} at ${DateTime.formatIso(cron.value.tick)}`)
    }
  })
)

// 2. Its schedule: every day at 03:00 Paris time, the payload built from the tick.
const NightlyDigestSchedule = CronSchedule.make({
  name: "nightly-digest",
  cron: "0 3 * * *",
  timeZone: "Europe/Paris",
  job: NightlyDigest,
  payload: (tick) => ({ day: DateTime.formatIsoDate(tick) }),
  catchUp: CronSchedule.backfill("6 hours"), // a deploy at 03:00 does not lose the night's digest
  overlap: "skip" // never two digests at once
})

// 3. Every worker process runs the same schedules; the store enqueues each tick once.
const MainLive = Layer.mergeAll(
  Worker.layer({ handlers: [NightlyDigestHandler] }),
  CronScheduler.layer({ schedules: [NightlyDigestSchedule] })
).pipe(Layer.provide(Sqlite.layer))

Layer.launch(MainLive).pipe(NodeRuntime.runMain)
