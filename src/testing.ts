/**
 * Test helpers for users' own tests (`conveyor/testing`).
 *
 * - `layer`: an in-memory store and a client, the same semantics as the SQL stores.
 * - `runInline`: run one handler once, as the worker would (payload round-tripped through its
 *   Schema and JSON, job layer built fresh, `JobContext` provided), without a store or a worker.
 * - `awaitFinished`: wait for jobs to finish on a worker, driven by its events, never by sleeping.
 */
import { Clock, Effect, type Exit, Layer, Option, Queue, Random, Schema, type Scope } from "effect"
import { type EnqueueError, JobClient } from "./JobClient.js"
import type { JobHandler } from "./Job.js"
import type { JobContext } from "./JobContext.js"
import { JobContext as JobContextTag } from "./JobContext.js"
import { JobStore, type JobRecord, type Trigger } from "./JobStore.js"
import * as Worker from "./Worker.js"
import { InvalidPayload } from "./Errors.js"
import { runAttempt } from "./internal/attempt.js"

/** An in-memory store with a client over it. */
export const layer: Layer.Layer<JobStore | JobClient> = JobClient.layer.pipe(Layer.provideMerge(JobStore.layerMemory))

export interface InlineOptions<JobOut, JobErr, JobIn> {
  readonly attempt?: number
  readonly trigger?: Trigger
  readonly tenantId?: string
  readonly metadata?: Record<string, unknown>
  readonly jobLayer?: Layer.Layer<JobOut, JobErr, JobIn>
}

/**
 * Run a handler once with `payload`, as the worker would, and return the attempt's Exit.
 * The payload is encoded and decoded with the job's Schema, so what the handler sees is what it
 * would see from the store.
 */
export const runInline = <R, JobOut = never, JobErr = never, JobIn = never>(
  handler: JobHandler<R>,
  payload: unknown,
  options: InlineOptions<JobOut, JobErr, JobIn> = {}
): Effect.Effect<Exit.Exit<unknown, unknown>, EnqueueError, Exclude<R, JobOut> | Exclude<JobIn, JobContext>> =>
  Effect.gen(function*() {
    const job = handler.job
    const encoded = yield* Schema.encode(job.payload)(payload).pipe(
      Effect.mapError((error) => new InvalidPayload({ job: job.name, message: error.message }))
    )
    const now = yield* Clock.currentTimeMillis
    const suffix = yield* Random.nextIntBetween(0, 2 ** 31)
    const record: JobRecord = {
      id: `inline-${suffix.toString(36)}`,
      name: job.name,
      queue: job.queue,
      state: "running",
      payload: JSON.stringify(encoded),
      priority: job.priority,
      attempt: options.attempt ?? 1,
      maxAttempts: job.maxAttempts,
      trigger: options.trigger ?? "manual",
      tenantId: options.tenantId ?? null,
      metadata: options.metadata ?? {},
      uniqueKey: null,
      traceContext: null,
      enqueuedAt: now,
      runAt: now,
      attemptedAt: now,
      finishedAt: null,
      leaseToken: 1,
      leaseExpiresAt: null,
      workerId: "inline",
      cancelRequested: false,
      errors: [],
      result: null
    }
    const attempt = runAttempt(
      handler as JobHandler<unknown>,
      record,
      (options.jobLayer ?? Layer.empty) as Layer.Layer<unknown, unknown, unknown>,
      JobContextTag.fromRecord(record, "inline"),
      undefined
    ) as Effect.Effect<unknown, unknown, never>
    return yield* Effect.exit(attempt)
  })

/**
 * Wait until `count` jobs have finished on the worker (any outcome), returning their events.
 * Subscribe before enqueueing: call it, fork it, then enqueue; or use `collectFinished`.
 */
export const collectFinished = (
  count: number
): Effect.Effect<Effect.Effect<ReadonlyArray<Worker.WorkerEvent & { _tag: "JobFinished" }>>, never, Worker.Worker | Scope.Scope> =>
  Effect.map(Worker.events, (events) =>
    Effect.gen(function*() {
      const finished: Array<Worker.WorkerEvent & { _tag: "JobFinished" }> = []
      while (finished.length < count) {
        const event = yield* Queue.take(events)
        if (event._tag === "JobFinished") finished.push(event)
      }
      return finished
    }))

/** The stored job, or a defect when it does not exist. */
export const getJob = (id: string): Effect.Effect<JobRecord, never, JobStore> =>
  Effect.flatMap(JobStore, (store) => store.get(id)).pipe(
    Effect.orDie,
    Effect.flatMap(Option.match({
      onNone: () => Effect.dieMessage(`no job ${id}`),
      onSome: Effect.succeed
    }))
  )
