/**
 * The per-job context: who this job is and why it runs. Provided to every handler and to the
 * job-scoped layers, fresh for each attempt, before anything of the job runs.
 */
import { Context, DateTime, Option } from "effect"
import type { JobRecord, Trigger } from "./JobStore.js"
import { cronEntryOf } from "./internal/cron.js"

/** Which cron schedule and tick enqueued a job. */
export interface CronContext {
  readonly schedule: string
  /** The tick the job was enqueued for (also its `scheduledAt` on the first attempt). */
  readonly tick: DateTime.Utc
}

export interface JobContextShape {
  readonly id: string
  readonly name: string
  readonly queue: string
  /** 1 on the first run; snoozes and shutdown releases do not spend attempts. */
  readonly attempt: number
  readonly maxAttempts: number
  readonly trigger: Trigger
  /** The tenant or workspace the job belongs to, when it was enqueued with one. */
  readonly tenantId: Option.Option<string>
  readonly enqueuedAt: DateTime.Utc
  /** When the job was due to run (its run-at, or the retry/snooze time). */
  readonly scheduledAt: DateTime.Utc
  readonly metadata: Readonly<Record<string, unknown>>
  /** For jobs with trigger `cron`: the schedule and tick that enqueued it. */
  readonly cron: Option.Option<CronContext>
  /** The worker running this attempt. */
  readonly workerId: string
}

export class JobContext extends Context.Tag("conveyor/JobContext")<JobContext, JobContextShape>() {
  /**
   * The context of an attempt of a stored job. Built for every attempt, so the fields that take
   * work to make (dates, options, the cron entry) are made when first read: most handlers read
   * one or two fields.
   */
  static fromRecord(job: JobRecord, workerId: string): JobContextShape {
    let tenantId: Option.Option<string> | undefined
    let enqueuedAt: DateTime.Utc | undefined
    let scheduledAt: DateTime.Utc | undefined
    let cron: Option.Option<CronContext> | undefined
    return {
      id: job.id,
      name: job.name,
      queue: job.queue,
      attempt: job.attempt,
      maxAttempts: job.maxAttempts,
      trigger: job.trigger,
      get tenantId() {
        return tenantId ??= Option.fromNullable(job.tenantId)
      },
      get enqueuedAt() {
        return enqueuedAt ??= DateTime.unsafeMake(job.enqueuedAt)
      },
      get scheduledAt() {
        return scheduledAt ??= DateTime.unsafeMake(job.runAt)
      },
      metadata: job.metadata,
      get cron() {
        return cron ??= cronEntryOf(job.trigger, job.metadata)
      },
      workerId
    }
  }
}
