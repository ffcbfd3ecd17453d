/**
 * One attempt of one job: decode the payload, open the job's scope, build the job-scoped
 * layers, provide the JobContext, run the handler under its timeout; then turn the Exit into
 * the settlement the store applies.
 */
import { Cause, Clock, Context, Duration, Effect, Either, Exit, FiberRef, Layer, Option, ParseResult, Schema, Scope, Tracer } from "effect"
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
const decoders = new WeakMap<AnyJob, (value: unknown) => Either.Either<unknown, ParseResult.ParseError>>()
const decoderOf = (job: AnyJob) => {
  let decoder = decoders.get(job)
  if (decoder === undefined) {
    decoder = Schema.decodeUnknownEither(job.payload)
    decoders.set(job, decoder)
  }
  return decoder
}

/** The payload decoded with the job's Schema, or why it could not be. */
export const decodePayload = (job: AnyJob, json: string): Either.Either<unknown, InvalidPayload> => {
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch (error) {
    return Either.left(new InvalidPayload({ job: job.name, message: `payload is not JSON: ${String(error)}` }))
  }
  return Either.mapLeft(
    decoderOf(job)(value),
    (error) => new InvalidPayload({ job: job.name, message: ParseResult.TreeFormatter.formatErrorSync(error) })
  )
}

/**
 * How the attempt's services reach the handler: by default `Effect.provide` scopes them to the
 * attempt (for any fiber); a worker's runner instead writes them into its own FiberRefs in one
 * step and puts its FiberRefs back after every job (half the cost of a no-op job, measured).
 */
export type InstallServices = (services: Context.Context<JobContext | Scope.Scope>) => Effect.Effect<void>

/**
 * The attempt's program. Everything job-scoped (the job layer's services and the handler's
 * own resources) lives in one scope, closed on every kind of exit: what `Effect.scoped` does,
 * with the job's `JobContext` (and parent span, when traced) given in the same step.
 *
 * A worker's runner passes the scope and closes it itself once it has the attempt's exit
 * (cheaper than a finalizer around every attempt); under a timeout the attempt still closes
 * it, within the timeout, and the runner's close finds it closed.
 */
export const runAttempt = (
  handler: JobHandler<unknown> | undefined,
  record: JobRecord,
  jobLayer: Layer.Layer<unknown, unknown, unknown>,
  context: typeof JobContext.Service,
  span: Tracer.AnySpan | undefined,
  runner?: { readonly install: InstallServices; readonly scope: Scope.CloseableScope }
): Effect.Effect<unknown, unknown, unknown> => {
  if (handler === undefined) return Effect.fail(new UnknownJob({ name: record.name }))
  const job = handler.job
  const payload = decodePayload(job, record.payload)
  if (Either.isLeft(payload)) return Effect.fail(payload.left)
  const run = (jobLayer as unknown) === Layer.empty
    ? handler.run(payload.right)
    : Effect.flatMap(Layer.build(jobLayer), (services) => Effect.provide(handler.run(payload.right), services))
  const timed = Duration.isFinite(job.timeout)
  const inScope = (scope: Scope.CloseableScope) => {
    // One map for the attempt's services, rather than one per service added.
    const entries = new Map<string, unknown>([[JobContext.key, context], [Scope.Scope.key, scope]])
    if (span !== undefined) entries.set(Tracer.ParentSpan.key, span)
    const services = Context.unsafeMake<JobContext | Scope.Scope>(entries)
    if (runner === undefined) return Effect.onExit(Effect.provide(run, services), (exit) => Scope.close(scope, exit))
    const withServices = Effect.zipRight(runner.install(services), run)
    return timed ? Effect.onExit(withServices, (exit) => Scope.close(scope, exit)) : withServices
  }
  const scoped = runner === undefined ? Effect.flatMap(Scope.make(), inScope) : inScope(runner.scope)
  return timed
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
 * The settlement of an attempt that succeeded with `value`. `keep: false` (completed jobs are
 * kept for no time) deletes the job at once, and its result, which no one could read, is not
 * encoded.
 */
export const completion = (record: JobRecord, job: AnyJob | undefined, value: unknown, keep = true): Settlement =>
  keep
    ? Settlement.Complete({ id: record.id, token: record.leaseToken, result: encodeResult(job, value) })
    : Settlement.Complete({ id: record.id, token: record.leaseToken, result: null, keep: false })

/**
 * The settlement for an attempt that did not succeed, or none when the lease was lost (another
 * worker or the rescuer owns the job now). A success settles with `completion`.
 */
export const failureSettlement = (
  record: JobRecord,
  job: AnyJob | undefined,
  cause: Cause.Cause<unknown>,
  stop: StopReason | undefined
): Effect.Effect<Settlement | undefined> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const lease = { id: record.id, token: record.leaseToken }
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
