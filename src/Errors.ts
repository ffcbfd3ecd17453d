/**
 * Every error Conveyor raises or understands, as tagged classes.
 *
 * Two of them are not failures but outcomes a handler chooses: `JobSnooze` (run again later,
 * without spending an attempt) and `JobCancel` (stop for good).
 */
import { Duration, Effect, Schema } from "effect"

/** Returned by a handler to run the job again after `delay`, without spending an attempt. */
export class JobSnooze extends Schema.TaggedError<JobSnooze>()("JobSnooze", {
  delay: Schema.DurationFromMillis
}) {
  override get message() {
    return `snoozed for ${Duration.format(this.delay)}`
  }
}

/** Returned by a handler to stop the job for good: it ends `cancelled`, never retried. */
export class JobCancel extends Schema.TaggedError<JobCancel>()("JobCancel", {
  reason: Schema.String
}) {
  override get message() {
    return `cancelled: ${this.reason}`
  }
}

/** The handler ran longer than its job's timeout and was interrupted. Retried like a failure. */
export class JobTimeout extends Schema.TaggedError<JobTimeout>()("JobTimeout", {
  timeout: Schema.DurationFromMillis
}) {
  override get message() {
    return `timed out after ${Duration.format(this.timeout)}`
  }
}

/** A payload that does not match its job's Schema: at enqueue (nothing stored) or at run time. */
export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()("InvalidPayload", {
  job: Schema.String,
  message: Schema.String
}) {}

/** A payload whose JSON form is larger than the configured limit; nothing was stored. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  job: Schema.String,
  bytes: Schema.Number,
  limit: Schema.Number
}) {
  override get message() {
    return `payload of job "${this.job}" is ${this.bytes} bytes, over the limit of ${this.limit}`
  }
}

/** A queue or job name that does not match the one pattern all names follow. */
export class InvalidName extends Schema.TaggedError<InvalidName>()("InvalidName", {
  kind: Schema.Literal("queue", "job"),
  name: Schema.String
}) {
  override get message() {
    return `invalid ${this.kind} name ${JSON.stringify(this.name)}: use 1-128 letters, digits, ` +
      `"_", "-", "." or ":", starting with a letter or digit`
  }
}

/** A job id that the store does not hold. */
export class JobNotFound extends Schema.TaggedError<JobNotFound>()("JobNotFound", {
  id: Schema.String
}) {
  override get message() {
    return `no job with id ${this.id}`
  }
}

/** The messages of an error and of the errors that caused it: "Failed to execute statement: relation ... does not exist". */
const describeCause = (cause: unknown): string => {
  const messages: Array<string> = []
  for (let current = cause, depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const message = current instanceof Error ? current.message : typeof current === "object" ? "" : String(current)
    if (message !== "" && !messages.includes(message)) messages.push(message)
    current = typeof current === "object" ? (current as { cause?: unknown }).cause : undefined
  }
  return messages.join(": ") || String(cause)
}

/** The store could not do what was asked; `op` names the store operation. */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  op: Schema.String,
  cause: Schema.Defect
}) {
  override get message() {
    return `job store failed in ${this.op}: ${describeCause(this.cause)}`
  }
}

/** Snooze the running job: it runs again after `delay` without spending an attempt. */
export const snooze = (delay: Duration.DurationInput): Effect.Effect<never, JobSnooze> =>
  Effect.fail(new JobSnooze({ delay: Duration.decode(delay) }))

/** Cancel the running job for good. */
export const cancel = (reason: string): Effect.Effect<never, JobCancel> => Effect.fail(new JobCancel({ reason }))
