/**
 * The operator's reads and actions, shared by the CLI and the admin HTTP API so both show the
 * same things: jobs as views (payloads hidden when configured), queues with counts by state and
 * paused status, cron schedules with their next run, and throughput over a window.
 */
import { Clock, Cron, DateTime, Duration, Effect, Either, Option, ParseResult, Schema } from "effect"
import {
  AttemptErrorView,
  CronView,
  type EnqueueRequest,
  Enqueued,
  JobPage,
  JobView,
  QueueView,
  type StateCounts,
  StatsView,
  ThroughputBucket,
  UnknownJob
} from "../AdminApi.js"
import { InvalidPayload, JobNotFound, PayloadTooLarge, type StoreError } from "../Errors.js"
import type { AnyJob } from "../Job.js"
import { make as makeJobClient } from "../JobClient.js"
import { type JobFilter, type JobRecord, type JobState, JobStore } from "../JobStore.js"
import { validateName } from "./names.js"

/**
 * A cron schedule as the process that runs it describes it, for display. A `CronSchedule`
 * value has this shape, so schedules can be passed as they are declared.
 */
export interface ScheduleDescription {
  /** The schedule's name, as its last tick is stored. */
  readonly name: string
  /** The cron expression (five or six fields). */
  readonly cron: string
  /** IANA time zone the expression is read in; UTC when absent. */
  readonly timeZone?: string
  /** The job it enqueues: its name, or its definition. */
  readonly job: string | { readonly name: string }
}

export interface OperationsOptions {
  /** Replace payloads and results by null in every view. */
  readonly hidePayloads?: boolean
  /** Schedules known to this process; the store adds their last ticks. */
  readonly schedules?: ReadonlyArray<ScheduleDescription>
  /**
   * Job definitions enqueue may use: a payload is validated with its job's Schema. Without
   * definitions (`undefined`), enqueue stores the JSON as given, under the given or "default" queue.
   */
  readonly jobs?: ReadonlyArray<AnyJob>
}

const emptyCounts = (): { -readonly [K in keyof StateCounts]: number } => ({
  scheduled: 0,
  available: 0,
  running: 0,
  retryable: 0,
  completed: 0,
  cancelled: 0,
  discarded: 0
})

const parseJson = (text: string | null): unknown => {
  if (text === null) return null
  try {
    return JSON.parse(text)
  } catch {
    // Stored text that is not JSON is shown as it is.
    return text
  }
}

const utc = (millis: number) => DateTime.unsafeMake(millis)
const utcOrNull = (millis: number | null) => (millis === null ? null : utc(millis))

export const makeOperations = (options: OperationsOptions = {}) =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const client = yield* makeJobClient()
    const hidePayloads = options.hidePayloads ?? false
    const definitions = options.jobs === undefined ? undefined : new Map(options.jobs.map((job) => [job.name, job]))

    const view = (job: JobRecord): JobView =>
      new JobView({
        id: job.id,
        name: job.name,
        queue: job.queue,
        state: job.state,
        priority: job.priority,
        attempt: job.attempt,
        maxAttempts: job.maxAttempts,
        trigger: job.trigger,
        tenantId: job.tenantId,
        payload: hidePayloads ? null : parseJson(job.payload),
        payloadHidden: hidePayloads,
        result: hidePayloads ? null : parseJson(job.result),
        metadata: job.metadata,
        enqueuedAt: utc(job.enqueuedAt),
        runAt: utc(job.runAt),
        attemptedAt: utcOrNull(job.attemptedAt),
        finishedAt: utcOrNull(job.finishedAt),
        workerId: job.workerId,
        cancelRequested: job.cancelRequested,
        errors: job.errors.map((error) =>
          new AttemptErrorView({ attempt: error.attempt, at: utc(error.at), kind: error.kind, message: error.message })
        )
      })

    const found = (id: string) => (option: Option.Option<JobRecord>) =>
      Option.match(option, { onNone: () => Effect.fail(new JobNotFound({ id })), onSome: (job) => Effect.succeed(view(job)) })

    const listJobs = Effect.fn("Operations.listJobs")(
      function*(filter: JobFilter) {
        const limit = filter.limit ?? 50
        const offset = filter.offset ?? 0
        // One more than asked tells whether another page exists.
        const jobs = yield* store.list({ ...filter, limit: limit + 1, offset })
        return new JobPage({ jobs: jobs.slice(0, limit).map(view), offset, limit, hasMore: jobs.length > limit })
      }
    )

    const queues = Effect.gen(function*() {
      const [counts, paused] = yield* Effect.all([store.counts, store.pausedQueues])
      const byQueue = new Map<string, ReturnType<typeof emptyCounts>>()
      const of = (queue: string) => {
        let counts = byQueue.get(queue)
        if (counts === undefined) byQueue.set(queue, counts = emptyCounts())
        return counts
      }
      for (const row of counts) of(row.queue)[row.state] += row.count
      for (const queue of paused) of(queue)
      const pausedSet = new Set(paused)
      return [...byQueue.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([queue, counts]) => new QueueView({ queue, paused: pausedSet.has(queue), counts }))
    })

    const queue = (name: string) =>
      Effect.map(queues, (all) =>
        all.find((q) => q.queue === name) ?? new QueueView({ queue: name, paused: false, counts: emptyCounts() }))

    const setPaused = (name: string, paused: boolean) =>
      Effect.zipRight(
        Effect.zipRight(validateName("queue", name), store.setQueuePaused(name, paused)),
        queue(name)
      )

    const nextRun = (schedule: ScheduleDescription, now: number): DateTime.Utc | null => {
      const parsed = Cron.parse(schedule.cron, schedule.timeZone ?? "UTC")
      // A schedule that does not parse has no next run to show; the scheduler reports it.
      return Either.isRight(parsed) ? DateTime.unsafeMake(Cron.next(parsed.right, now)) : null
    }

    const cron = Effect.gen(function*() {
      const ticks = new Map((yield* store.cronLastTicks).map((row) => [row.schedule, row.tick]))
      const now = yield* Clock.currentTimeMillis
      const known = (options.schedules ?? []).map((schedule) =>
        new CronView({
          schedule: schedule.name,
          cron: schedule.cron,
          timeZone: schedule.timeZone ?? "UTC",
          job: typeof schedule.job === "string" ? schedule.job : schedule.job.name,
          lastTick: Option.getOrNull(Option.map(Option.fromNullable(ticks.get(schedule.name)), utc)),
          nextRun: nextRun(schedule, now)
        })
      )
      const knownNames = new Set(known.map((view) => view.schedule))
      const storedOnly = [...ticks.entries()]
        .filter(([name]) => !knownNames.has(name))
        .map(([schedule, tick]) => new CronView({ schedule, cron: null, timeZone: null, job: null, lastTick: utc(tick), nextRun: null }))
      return [...known, ...storedOnly].sort((a, b) => a.schedule.localeCompare(b.schedule))
    })

    const stats = Effect.fn("Operations.stats")(
      function*(window: Duration.DurationInput = "1 hour", bucket: Duration.DurationInput = "1 minute") {
        const now = yield* Clock.currentTimeMillis
        const bucketMillis = Math.max(1000, Math.round(Duration.toMillis(bucket)))
        const buckets = Math.ceil(Duration.toMillis(window) / bucketMillis)
        // Whole buckets, the current one last.
        const since = (Math.floor(now / bucketMillis) - buckets + 1) * bucketMillis
        const [all, finished] = yield* Effect.all([queues, store.finishedCounts({ since, bucketMillis })])
        const totals = emptyCounts()
        for (const q of all) for (const state of Object.keys(totals) as Array<JobState>) totals[state] += q.counts[state]
        const series = Array.from({ length: buckets }, (_, i) => ({
          at: since + i * bucketMillis,
          completed: 0,
          discarded: 0,
          cancelled: 0
        }))
        for (const row of finished) {
          const entry = series[Math.floor((row.bucket - since) / bucketMillis)]
          if (entry !== undefined) entry[row.state] += row.count
        }
        const completed = series.reduce((sum, b) => sum + b.completed, 0)
        const discarded = series.reduce((sum, b) => sum + b.discarded, 0)
        return new StatsView({
          totals,
          queues: all.length,
          pausedQueues: all.filter((q) => q.paused).length,
          since: utc(since),
          bucketSeconds: bucketMillis / 1000,
          throughput: series.map((b) => new ThroughputBucket({ ...b, at: utc(b.at) })),
          completed,
          discarded,
          failureRate: completed + discarded === 0 ? null : discarded / (completed + discarded)
        })
      }
    )

    const enqueue = Effect.fn("Operations.enqueue")(
      function*(request: EnqueueRequest) {
        const name = yield* validateName("job", request.name)
        const now = yield* Clock.currentTimeMillis
        const delayMillis = Math.round((request.delaySeconds ?? 0) * 1000)
        if (definitions !== undefined) {
          const job = definitions.get(name)
          if (job === undefined) return yield* new UnknownJob({ name })
          const payload = yield* Schema.decodeUnknown(job.payload)(request.payload).pipe(
            Effect.mapError((error) =>
              new InvalidPayload({
                job: name,
                message: ParseResult.ArrayFormatter.formatErrorSync(error)
                  .map((issue) => `${issue.path.length === 0 ? "payload" : issue.path.join(".")}: ${issue.message}`)
                  .join("; ")
              })
            )
          )
          const [result] = yield* client.enqueueMany(job, [{
            payload,
            options: {
              trigger: "manual",
              delay: Duration.millis(delayMillis),
              ...(request.queue === undefined ? {} : { queue: request.queue }),
              ...(request.priority === undefined ? {} : { priority: request.priority }),
              ...(request.uniqueKey === undefined ? {} : { uniqueKey: request.uniqueKey })
            }
          }])
          return new Enqueued(result!)
        }
        // No definitions here: store the JSON as given; the worker validates it when it runs.
        const queue = yield* validateName("queue", request.queue ?? "default")
        const payload = JSON.stringify(request.payload ?? null)
        const bytes = Buffer.byteLength(payload, "utf8")
        const limit = 1024 * 1024
        if (bytes > limit) return yield* new PayloadTooLarge({ job: name, bytes, limit })
        const [result] = yield* store.insert([{
          name,
          queue,
          payload,
          priority: request.priority ?? 0,
          maxAttempts: 20,
          runAt: now + delayMillis,
          trigger: "manual",
          tenantId: null,
          metadata: null,
          uniqueKey: request.uniqueKey ?? null,
          traceContext: null
        }])
        return new Enqueued(result!)
      }
    )

    return {
      hidePayloads,
      listJobs,
      getJob: (id: string) => Effect.flatMap(store.get(id), found(id)),
      retryJob: (id: string) => Effect.flatMap(store.retry(id), found(id)),
      cancelJob: (id: string) => Effect.flatMap(store.cancel(id), found(id)),
      queues,
      pauseQueue: (name: string) => setPaused(name, true),
      resumeQueue: (name: string) => setPaused(name, false),
      cron,
      stats,
      enqueue,
      /** Reachability: the cheapest store read. */
      ping: Effect.asVoid(store.pausedQueues) as Effect.Effect<void, StoreError>
    }
  })

export type Operations = Effect.Effect.Success<ReturnType<typeof makeOperations>>
