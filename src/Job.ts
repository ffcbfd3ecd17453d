/**
 * Job definitions: a job is a value with a stable persisted name and a payload Schema.
 *
 * ```ts
 * const SendEmail = Job.make({
 *   name: "send_email",
 *   queue: "mail",
 *   payload: Schema.Struct({ to: Schema.String }),
 *   error: MailRejected
 * })
 * const SendEmailHandler = SendEmail.handler(({ to }) => Effect.gen(function*() { ... }))
 * ```
 *
 * The name is what is stored with every job; it never comes from a class or function name, so
 * renaming code does not orphan queued jobs.
 */
import { Duration, type Effect, Schema, type Scope } from "effect"
import * as Backoff from "./Backoff.js"
import { InvalidName, type JobCancel, type JobSnooze } from "./Errors.js"
import type { JobContext } from "./JobContext.js"
import { isValidName } from "./internal/names.js"

/** A payload Schema: needs no services to decode or encode. */
export type AnySchema = Schema.Schema.AnyNoContext
/** A success or error Schema (`Schema.Never` included). */
export type AnyOutcomeSchema = Schema.Schema.All

export interface JobOptions<Payload extends AnySchema, Success extends AnyOutcomeSchema, Failure extends AnyOutcomeSchema> {
  /** Persisted name: stable across renames and deploys. */
  readonly name: string
  readonly payload: Payload
  /** Encodes the handler's result, which is then stored with the completed job. */
  readonly success?: Success
  /** The typed errors the handler may fail with; they are stored encoded with each failed attempt. */
  readonly error?: Failure
  /** Default `"default"`. */
  readonly queue?: string
  /** Lower runs first. Default 0. */
  readonly priority?: number
  /** Attempts before the job is discarded. Default 20. */
  readonly maxAttempts?: number
  /** Delay between attempts. Default: exponential from 1 s with jitter, capped at 1 hour. */
  readonly backoff?: Backoff.Backoff
  /** Interrupts an attempt that runs longer; it then counts as a failed attempt. Default: none. */
  readonly timeout?: Duration.DurationInput
  /** A unique key derived from the payload: a second enqueue while one is live returns the first. */
  readonly uniqueKey?: (payload: Schema.Schema.Type<Payload>) => string
}

export interface Job<
  Payload extends AnySchema = AnySchema,
  Success extends AnyOutcomeSchema = AnyOutcomeSchema,
  Failure extends AnyOutcomeSchema = AnyOutcomeSchema
> {
  readonly name: string
  readonly queue: string
  readonly priority: number
  readonly maxAttempts: number
  readonly backoff: Backoff.Backoff
  readonly timeout: Duration.Duration
  readonly payload: Payload
  readonly success: Success
  readonly error: Failure
  readonly uniqueKey: ((payload: Schema.Schema.Type<Payload>) => string) | undefined
  /**
   * The handler for this job. Its requirements flow into the worker's layer type: they are
   * served by process-scoped layers or by the worker's job-scoped layers, and the handler cannot
   * tell which. `JobContext` and `Scope` (the job's own) are always there.
   */
  readonly handler: <R>(
    run: (payload: Schema.Schema.Type<Payload>) => Effect.Effect<
      Schema.Schema.Type<Success>,
      Schema.Schema.Type<Failure> | JobSnooze | JobCancel,
      R
    >
  ) => JobHandler<Exclude<R, JobContext | Scope.Scope>>
}

export type AnyJob = Job<AnySchema, AnyOutcomeSchema, AnyOutcomeSchema>

/** A job definition paired with the code that runs it, ready for a worker. */
export interface JobHandler<out R> {
  readonly job: AnyJob
  readonly run: (payload: unknown) => Effect.Effect<unknown, unknown, R | JobContext | Scope.Scope>
}

/** The services a list of handlers needs. */
export type HandlerContext<H> = H extends JobHandler<infer R> ? R : never

const assertName = (kind: "queue" | "job", name: string) => {
  // A definition is code: a bad name is a programming error, reported when the module loads.
  if (!isValidName(name)) throw new InvalidName({ kind, name })
}

export const make = <
  Payload extends AnySchema,
  Success extends AnyOutcomeSchema = typeof Schema.Void,
  Failure extends AnyOutcomeSchema = typeof Schema.Never
>(
  options: JobOptions<Payload, Success, Failure>
): Job<Payload, Success, Failure> => {
  assertName("job", options.name)
  const queue = options.queue ?? "default"
  assertName("queue", queue)
  const maxAttempts = options.maxAttempts ?? 20
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(`job "${options.name}": maxAttempts must be a positive integer, got ${maxAttempts}`)
  }
  const job: Job<Payload, Success, Failure> = {
    name: options.name,
    queue,
    priority: options.priority ?? 0,
    maxAttempts,
    backoff: options.backoff ?? Backoff.defaultBackoff,
    timeout: options.timeout === undefined ? Duration.infinity : Duration.decode(options.timeout),
    payload: options.payload,
    success: options.success ?? (Schema.Void as unknown as Success),
    error: options.error ?? (Schema.Never as unknown as Failure),
    uniqueKey: options.uniqueKey,
    handler: (run) => ({ job: job as unknown as AnyJob, run: run as JobHandler<never>["run"] })
  }
  return job
}
