/**
 * Cron schedules: recurring jobs declared in code, next to the worker.
 *
 * ```ts
 * const NightlyDigestSchedule = CronSchedule.make({
 *   name: "nightly-digest",
 *   cron: "0 3 * * *",                  // 5 fields, or 6 with seconds first
 *   timeZone: "Europe/Paris",           // IANA name; default "UTC"
 *   job: NightlyDigest,
 *   payload: (tick) => ({ day: DateTime.formatIsoDate(tick) }),
 *   catchUp: CronSchedule.backfill("1 hour"),
 *   overlap: "skip"
 * })
 * const SchedulerLive = CronScheduler.layer({ schedules: [NightlyDigestSchedule] })
 * ```
 *
 * A schedule is a plain value; nothing is checked until `CronScheduler.layer` starts, where a
 * bad expression or time zone fails with `InvalidSchedule` naming the schedule. Each tick is
 * enqueued once across every worker running the same schedules (see docs/cron.md).
 */
import type { DateTime, Duration, Effect, Schema } from "effect"
import type { InvalidSchedule } from "./Errors.js"
import type { AnySchema, Job } from "./Job.js"
import * as internal from "./internal/cron.js"

/**
 * What to do with ticks that passed while no worker ran the schedule.
 * - `Skip` (default): drop them; the schedule resumes with its next tick.
 * - `Backfill`: enqueue, in order and with their own tick times, the missed ticks that fall in
 *   the last `window` (counted back from the moment a worker resumes the schedule).
 */
export type CatchUp =
  | { readonly _tag: "Skip" }
  | { readonly _tag: "Backfill"; readonly window: Duration.DurationInput }

export const skip: CatchUp = { _tag: "Skip" }
export const backfill = (window: Duration.DurationInput): CatchUp => ({ _tag: "Backfill", window })

/**
 * - `allow` (default): every tick enqueues a job, even while an earlier one still runs.
 * - `skip`: a tick is skipped while the schedule's previous job is still live (waiting, running
 *   or waiting for a retry).
 */
export type Overlap = "allow" | "skip"

export interface CronScheduleOptions<P extends AnySchema> {
  /** Identifies the schedule in the store (its last tick) and in every job it enqueues. */
  readonly name: string
  /** 5 fields (minute hour day month weekday), or 6 with seconds first. */
  readonly cron: string
  /** IANA time zone the expression is read in. Default `"UTC"`. */
  readonly timeZone?: string
  readonly job: Job<P, any, any>
  /** The payload, or a function of the tick (in the schedule's time zone). */
  readonly payload: Schema.Schema.Type<P> | ((tick: DateTime.Zoned) => Schema.Schema.Type<P>)
  readonly catchUp?: CatchUp
  readonly overlap?: Overlap
  /** Overrides the job's queue. */
  readonly queue?: string
  /** Overrides the job's priority. */
  readonly priority?: number
  /** Overrides the job's attempts. */
  readonly maxAttempts?: number
  readonly tenantId?: string
  /** Stored with every job of the schedule, next to the reserved cron entry. */
  readonly metadata?: Readonly<Record<string, unknown>>
}

export interface CronSchedule<P extends AnySchema = AnySchema> {
  readonly name: string
  readonly cron: string
  readonly timeZone: string
  readonly job: Job<P, any, any>
  readonly payload: Schema.Schema.Type<P> | ((tick: DateTime.Zoned) => Schema.Schema.Type<P>)
  readonly catchUp: CatchUp
  readonly overlap: Overlap
  readonly queue: string
  readonly priority: number
  readonly maxAttempts: number
  readonly tenantId: string | null
  readonly metadata: Readonly<Record<string, unknown>>
}

export type AnyCronSchedule = CronSchedule<any>

/** Declare a schedule. Checked when the scheduler starts, not here. */
export const make = <P extends AnySchema>(options: CronScheduleOptions<P>): CronSchedule<P> => ({
  name: options.name,
  cron: options.cron,
  timeZone: options.timeZone ?? "UTC",
  job: options.job,
  payload: options.payload,
  catchUp: options.catchUp ?? skip,
  overlap: options.overlap ?? "allow",
  queue: options.queue ?? options.job.queue,
  priority: options.priority ?? options.job.priority,
  maxAttempts: options.maxAttempts ?? options.job.maxAttempts,
  tenantId: options.tenantId ?? null,
  metadata: options.metadata ?? {}
})

/**
 * The next `count` ticks of a schedule strictly after `after`, in its time zone: for previews
 * (CLI, dashboard) and tests. Fails like the scheduler would on a bad expression or zone.
 */
export const nextTicks: (
  schedule: AnyCronSchedule,
  options: { readonly after: DateTime.DateTime; readonly count: number }
) => Effect.Effect<ReadonlyArray<DateTime.Zoned>, InvalidSchedule> = internal.nextTicks
