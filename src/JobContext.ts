/**
 * The per-job context: who this job is and why it runs. Provided to every handler and to the
 * job-scoped layers, fresh for each attempt, before anything of the job runs.
 */
import { Context, DateTime, Option, type Types } from "effect"
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

// The plain fields, declared once (on the shape) and set by the constructor; handlers see them
// read-only through `JobContextShape`.
interface AttemptContext extends Types.Mutable<Omit<JobContextShape, "tenantId" | "enqueuedAt" | "scheduledAt" | "cron">> {}
/**
 * The context of one attempt of a stored job. Built for every attempt, so the fields that take
 * work to make (dates, options, the cron entry) are made when first read: most handlers read one
 * or two fields. A class rather than an object literal with getters: its getters live once on
 * the prototype instead of being made again for every job.
 */
class AttemptContext implements JobContextShape {
  readonly #job: JobRecord
  #tenantId: Option.Option<string> | undefined
  #enqueuedAt: DateTime.Utc | undefined
  #scheduledAt: DateTime.Utc | undefined
  #cron: Option.Option<CronContext> | undefined
  constructor(job: JobRecord, workerId: string) {
    this.id = job.id
    this.name = job.name
    this.queue = job.queue
    this.attempt = job.attempt
    this.maxAttempts = job.maxAttempts
    this.trigger = job.trigger
    this.metadata = job.metadata
    this.workerId = workerId
    this.#job = job
  }
  get tenantId() {
    return this.#tenantId ??= Option.fromNullable(this.#job.tenantId)
  }
  get enqueuedAt() {
    return this.#enqueuedAt ??= DateTime.unsafeMake(this.#job.enqueuedAt)
  }
  get scheduledAt() {
    return this.#scheduledAt ??= DateTime.unsafeMake(this.#job.runAt)
  }
  get cron() {
    return this.#cron ??= cronEntryOf(this.#job.trigger, this.#job.metadata)
  }
  /** Every field, the lazy ones included, as a plain object would show them. */
  toJSON() {
    return {
      id: this.id,
      name: this.name,
      queue: this.queue,
      attempt: this.attempt,
      maxAttempts: this.maxAttempts,
      trigger: this.trigger,
      tenantId: this.tenantId,
      enqueuedAt: this.enqueuedAt,
      scheduledAt: this.scheduledAt,
      metadata: this.metadata,
      cron: this.cron,
      workerId: this.workerId
    }
  }
}

export class JobContext extends Context.Tag("conveyor/JobContext")<JobContext, JobContextShape>() {
  /** The context of an attempt of a stored job; its costlier fields are made when first read. */
  static fromRecord(job: JobRecord, workerId: string): JobContextShape {
    return new AttemptContext(job, workerId)
  }
}
