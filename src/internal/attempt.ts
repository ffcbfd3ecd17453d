/**
 * One attempt of one job: decode the payload, open the job's scope, build the job-scoped
 * layers, provide the JobContext, run the handler under its timeout; then turn the Exit into
 * the settlement the store applies.
 */
import { Cause, Clock, Duration, Effect, Exit, Layer, Option, ParseResult, Schema } from "effect"
import * as Backoff from "../Backoff.js"
import { InvalidPayload, JobCancel, JobSnooze, JobTimeout } from "../Errors.js"
import type { AnyJob, JobHandler } from "../Job.js"
import { JobContext } from "../JobContext.js"
import { type AttemptError, type JobRecord, Settlement } from "../JobStore.js"

/** No handler for this job name is registered on this worker (another deployment may have one). */
export class UnknownJob extends Schema.TaggedError<UnknownJob>()("UnknownJob", { name: Schema.String }) {
  override get message() {
    return `no handler for job "${this.name}" is registered on this worker`
  }
}

/** One decoder per job definition, built on first use. */
const decoders = new WeakMap<AnyJob, (value: unknown) => Effect.Effect<unknown, ParseResult.ParseError>>()
const decoderOf = (job: AnyJob) => {
  let decoder = decoders.get(job)
  if (decoder === undefined) {
    decoder = Schema.decodeUnknown(job.payload)
    decoders.set(job, decoder)
  }
  return decoder
}

export const decodePayload = (job: AnyJob, json: string) =>
  Effect.try({
    try: () => JSON.parse(json) as unknown,
    catch: (error) => new InvalidPayload({ job: job.name, message: `payload is not JSON: ${String(error)}` })
  }).pipe(
    Effect.flatMap((value) =>
      decoderOf(job)(value).pipe(
        Effect.mapError((error) =>
          new InvalidPayload({ job: job.name, message: ParseResult.TreeFormatter.formatErrorSync(error) })
        )
      )
    )
  )

/**
 * The attempt's program. Everything job-scoped (the job layer's services and the handler's
 * own resources) lives in one `Effect.scoped` block, closed on every kind of exit.
 */
export const runAttempt = (
  handler: JobHandler<unknown> | undefined,
  record: JobRecord,
  jobLayer: Layer.Layer<unknown, unknown, unknown>,
  context: typeof JobContext.Service
): Effect.Effect<unknown, unknown, unknown> => {
  if (handler === undefined) return Effect.fail(new UnknownJob({ name: record.name }))
  const job = handler.job
  const scoped = Effect.gen(function*() {
    const payload = yield* decodePayload(job, record.payload)
    if ((jobLayer as unknown) === Layer.empty) return yield* handler.run(payload)
    const services = yield* Layer.build(jobLayer)
    return yield* Effect.provide(handler.run(payload), services)
  }).pipe(Effect.provideService(JobContext, context), Effect.scoped)
  return Duration.isFinite(job.timeout)
    ? Effect.timeoutFail(scoped, { duration: job.timeout, onTimeout: () => new JobTimeout({ timeout: job.timeout }) })
    : scoped
}

/** Why the worker itself interrupted an attempt, if it did. */
export type StopReason = "shutdown" | "cancel" | "lost"

const attemptError = (
  record: JobRecord,
  at: number,
  kind: AttemptError["kind"],
  message: string,
  error?: unknown
): AttemptError => ({
  attempt: record.attempt,
  at,
  kind,
  message,
  ...(error === undefined ? {} : { error })
})

const encodeResult = (job: AnyJob | undefined, value: unknown): string | null => {
  if (job === undefined || value === undefined) return null
  const encoded = Schema.encodeUnknownOption(job.success as Schema.Schema<unknown>)(value)
  return Option.isSome(encoded) && encoded.value !== undefined ? JSON.stringify(encoded.value) : null
}

/**
 * The settlement for an attempt's exit, or none when the lease was lost (another worker or the
 * rescuer owns the job now).
 */
export const settlementFor = (
  record: JobRecord,
  job: AnyJob | undefined,
  exit: Exit.Exit<unknown, unknown>,
  stop: StopReason | undefined
): Effect.Effect<Settlement | undefined> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const lease = { id: record.id, token: record.leaseToken }
    if (Exit.isSuccess(exit)) return Settlement.Complete({ ...lease, result: encodeResult(job, exit.value) })

    const cause = exit.cause
    if (stop === "lost") return undefined
    if (Cause.isInterruptedOnly(cause)) {
      if (stop === "shutdown") return Settlement.Release(lease)
      if (stop === "cancel") return Settlement.Cancel({ ...lease, reason: "cancelled while running" })
    }

    const failure = Cause.failureOption(cause)
    let error: AttemptError
    if (Option.isSome(failure)) {
      const e = failure.value
      if (e instanceof JobSnooze) return Settlement.Snooze({ ...lease, runAt: now + Math.ceil(Duration.toMillis(e.delay)) })
      if (e instanceof JobCancel) return Settlement.Cancel({ ...lease, reason: e.reason })
      if (e instanceof InvalidPayload) {
        // Decoding again would fail again: no retry loop.
        return Settlement.Discard({ ...lease, error: attemptError(record, now, "invalid-payload", e.message) })
      }
      const kind = e instanceof JobTimeout ? "timeout" : e instanceof UnknownJob ? "unknown-job" : "failure"
      const encoded = job === undefined ? Option.none() : Schema.encodeUnknownOption(job.error as Schema.Schema<unknown>)(e)
      error = attemptError(record, now, kind, Cause.pretty(cause), Option.getOrUndefined(encoded))
    } else if (Cause.isInterruptedOnly(cause)) {
      error = attemptError(record, now, "interrupted", Cause.pretty(cause))
    } else {
      error = attemptError(record, now, "defect", Cause.pretty(cause))
    }

    if (record.attempt >= record.maxAttempts) return Settlement.Discard({ ...lease, error })
    const delay = yield* Backoff.delayAfter(job?.backoff ?? Backoff.defaultBackoff, record.attempt)
    return Option.match(delay, {
      onNone: () => Settlement.Discard({ ...lease, error }),
      onSome: (delay) => Settlement.Retry({ ...lease, runAt: now + Math.ceil(Duration.toMillis(delay)), error })
    })
  })
