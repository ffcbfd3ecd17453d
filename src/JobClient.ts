/**
 * The enqueue client: typed by the job definition, it encodes and validates the payload with
 * the job's Schema before anything is stored, so bad input fails fast and nothing half-written
 * is left behind.
 */
import { Context, DateTime, Duration, Effect, Either, Layer, Option, ParseResult, Schema } from "effect"
import {
  InvalidName,
  InvalidPayload,
  JobNotFound,
  PayloadTooLarge,
  type StoreError
} from "./Errors.js"
import type { AnyJob, AnySchema, Job } from "./Job.js"
import { JobStore, type JobInsert, type JobRecord, type Trigger } from "./JobStore.js"
import * as Metrics from "./internal/metrics.js"
import { validateName } from "./internal/names.js"
import { withSendSpan } from "./internal/tracing.js"

export interface EnqueueOptions {
  /** Run at this time (or later). */
  readonly runAt?: DateTime.DateTime | Date
  /** Run after this delay; ignored when `runAt` is given. */
  readonly delay?: Duration.DurationInput
  /** Lower runs first; defaults to the job's priority. */
  readonly priority?: number
  /** Deduplication: while a job with this key is not finished, enqueueing again returns it. */
  readonly uniqueKey?: string
  readonly tenantId?: string
  readonly metadata?: Readonly<Record<string, unknown>>
  /** `"queue"` by default; `"manual"` for operator actions. */
  readonly trigger?: Trigger
  readonly maxAttempts?: number
  /** Overrides the job's queue. */
  readonly queue?: string
}

export interface Enqueued {
  readonly id: string
  /** False when a live job with the same unique key already existed; `id` is that job. */
  readonly inserted: boolean
}

export type EnqueueError = InvalidPayload | PayloadTooLarge | InvalidName | StoreError

export interface JobClientShape {
  /** Enqueue one job; returns its id (the existing job's id when the unique key is live). */
  readonly enqueue: <P extends AnySchema>(
    job: Job<P, any, any>,
    payload: Schema.Schema.Type<P>,
    options?: EnqueueOptions
  ) => Effect.Effect<string, EnqueueError>
  /** Enqueue many jobs of one definition in one store round trip. Validates all before storing any. */
  readonly enqueueMany: <P extends AnySchema>(
    job: Job<P, any, any>,
    items: ReadonlyArray<{ readonly payload: Schema.Schema.Type<P>; readonly options?: EnqueueOptions }>
  ) => Effect.Effect<ReadonlyArray<Enqueued>, EnqueueError>
  readonly get: (id: string) => Effect.Effect<JobRecord, JobNotFound | StoreError>
  readonly cancel: (id: string) => Effect.Effect<JobRecord, JobNotFound | StoreError>
  readonly retry: (id: string) => Effect.Effect<JobRecord, JobNotFound | StoreError>
}

export interface JobClientOptions {
  /** Largest accepted payload, as UTF-8 JSON. Default 1 MiB. */
  readonly maxPayloadBytes?: number
}

/** One encoder per job definition, built on first use. */
const encoders = new WeakMap<AnyJob, (value: unknown) => Either.Either<unknown, ParseResult.ParseError>>()

const encodeJson = (job: AnyJob, value: unknown): Either.Either<string, InvalidPayload> => {
  let encode = encoders.get(job)
  if (encode === undefined) encoders.set(job, encode = Schema.encodeEither(job.payload as Schema.Schema<unknown>))
  return Either.match(encode(value), {
    onLeft: (error) =>
      Either.left(new InvalidPayload({ job: job.name, message: ParseResult.TreeFormatter.formatErrorSync(error) })),
    onRight: (encoded) => Either.right(JSON.stringify(encoded))
  })
}

/** Calls `record` once per queue among `inserts` (nearly always one) with how many went there. */
const forEachQueue = (
  jobName: string,
  inserts: ReadonlyArray<JobInsert>,
  record: (series: Metrics.JobSeries, count: number) => void
) => {
  const first = inserts[0]
  if (first === undefined) return
  if (inserts.every((insert) => insert.queue === first.queue)) {
    return record(Metrics.seriesOf(first.queue, jobName), inserts.length)
  }
  const counts = new Map<string, number>()
  for (const insert of inserts) counts.set(insert.queue, (counts.get(insert.queue) ?? 0) + 1)
  for (const [queue, count] of counts) record(Metrics.seriesOf(queue, jobName), count)
}

export const make = (options: JobClientOptions = {}) =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const maxPayloadBytes = options.maxPayloadBytes ?? 1024 * 1024

    // Synchronous, as it runs once per job of a batch: an effect per job cost as much as the
    // insert itself on large batches.
    const toInsert = (
      job: AnyJob,
      payload: unknown,
      opts: EnqueueOptions,
      now: number
    ): Either.Either<JobInsert, InvalidName | InvalidPayload | PayloadTooLarge> => {
      const queue = opts.queue ?? job.queue
      const validQueue = validateName("queue", queue)
      if (Either.isLeft(validQueue)) return Either.left(validQueue.left)
      const json = encodeJson(job, payload)
      if (Either.isLeft(json)) return Either.left(json.left)
      // UTF-8 takes at most 3 bytes per UTF-16 unit: only a long payload needs counting.
      if (json.right.length * 3 > maxPayloadBytes) {
        const bytes = Buffer.byteLength(json.right, "utf8")
        if (bytes > maxPayloadBytes) return Either.left(new PayloadTooLarge({ job: job.name, bytes, limit: maxPayloadBytes }))
      }
      const runAt = opts.runAt !== undefined
        ? DateTime.toEpochMillis(DateTime.unsafeMake(opts.runAt))
        : opts.delay !== undefined
        ? now + Math.ceil(Duration.toMillis(opts.delay))
        : now
      return Either.right({
        name: job.name,
        queue,
        payload: json.right,
        priority: opts.priority ?? job.priority,
        maxAttempts: opts.maxAttempts ?? job.maxAttempts,
        runAt,
        trigger: opts.trigger ?? "queue",
        tenantId: opts.tenantId ?? null,
        metadata: opts.metadata === undefined ? null : JSON.stringify(opts.metadata),
        uniqueKey: opts.uniqueKey ?? (job.uniqueKey ? `${job.name}:${job.uniqueKey(payload)}` : null),
        // Set by the send span around the insert.
        traceContext: null
      })
    }

    /** Insert in a producer span whose trace context each job keeps; count what was sent. */
    const send = (jobName: string, inserts: ReadonlyArray<JobInsert>) =>
      withSendSpan(inserts, store.insert).pipe(
        Effect.tapBoth({
          onSuccess: () => Effect.sync(() => forEachQueue(jobName, inserts, Metrics.recordSent)),
          onFailure: (error) =>
            Effect.sync(() =>
              forEachQueue(jobName, inserts, (series, count) => Metrics.recordSendFailed(series, count, error._tag))
            )
        })
      )

    // One step before the store: each effect of an enqueue costs an idle process several times
    // what it costs a busy one, and a single enqueue's latency is mostly such steps.
    const enqueueMany: JobClientShape["enqueueMany"] = (job, items) =>
      Effect.clockWith((clock): Effect.Effect<ReadonlyArray<Enqueued>, EnqueueError> => {
        const validJob = validateName("job", job.name)
        if (Either.isLeft(validJob)) return Effect.fail(validJob.left)
        const now = clock.unsafeCurrentTimeMillis()
        const inserts: Array<JobInsert> = []
        for (const item of items) {
          const insert = toInsert(job, item.payload, item.options ?? {}, now)
          if (Either.isLeft(insert)) return Effect.fail(insert.left)
          inserts.push(insert.right)
        }
        return send(job.name, inserts)
      })

    const enqueue: JobClientShape["enqueue"] = (job, payload, opts) =>
      Effect.map(enqueueMany(job, [opts === undefined ? { payload } : { payload, options: opts }]), (results) => results[0]!.id)

    const found = (id: string) => (option: Option.Option<JobRecord>) =>
      Option.match(option, { onNone: () => Effect.fail(new JobNotFound({ id })), onSome: Effect.succeed })

    return {
      enqueue,
      enqueueMany,
      get: (id) => Effect.flatMap(store.get(id), found(id)),
      cancel: (id) => Effect.flatMap(store.cancel(id), found(id)),
      retry: (id) => Effect.flatMap(store.retry(id), found(id))
    } satisfies JobClientShape
  })

export class JobClient extends Context.Tag("conveyor/JobClient")<JobClient, JobClientShape>() {
  static readonly layer: Layer.Layer<JobClient, never, JobStore> = Layer.effect(JobClient, make())
  static readonly layerWith = (options: JobClientOptions): Layer.Layer<JobClient, never, JobStore> =>
    Layer.effect(JobClient, make(options))
}

/** Enqueue one job with the `JobClient` in context. */
export const enqueue = <P extends AnySchema>(
  job: Job<P, any, any>,
  payload: Schema.Schema.Type<P>,
  options?: EnqueueOptions
): Effect.Effect<string, EnqueueError, JobClient> =>
  Effect.flatMap(JobClient, (client) => client.enqueue(job, payload, options))

/** Enqueue many jobs of one definition with the `JobClient` in context. */
export const enqueueMany = <P extends AnySchema>(
  job: Job<P, any, any>,
  items: ReadonlyArray<{ readonly payload: Schema.Schema.Type<P>; readonly options?: EnqueueOptions }>
): Effect.Effect<ReadonlyArray<Enqueued>, EnqueueError, JobClient> =>
  Effect.flatMap(JobClient, (client) => client.enqueueMany(job, items))
