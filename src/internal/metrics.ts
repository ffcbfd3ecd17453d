/**
 * Conveyor's metrics, defined once, in Effect's metric registry: exported through
 * OpenTelemetry by the telemetry layer and rendered as Prometheus text by `prometheusText`.
 *
 * Labels stay low-cardinality: queue, job name, outcome, state (never job ids or tenants).
 * Durations are in seconds, as the messaging conventions ask (`Metric.timer` would record
 * milliseconds). Updates on the hot path reuse one label array per series: Effect caches a
 * metric's hook by the identity of that array, so a steady worker allocates nothing per update.
 */
import { Duration, Effect, Layer, Metric, MetricBoundaries, MetricLabel, Schedule } from "effect"
import { type JobState, JobStore, type JobStoreShape, type RescueResult } from "../JobStore.js"
import { Attributes, messagingSystem, type Outcome } from "./tracing.js"

/** Bucket bounds in seconds, from OpenTelemetry's advice for messaging durations, widened for jobs. */
const durationBoundaries = MetricBoundaries.fromIterable([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 300, 900, 3600
])
/** Waiting time spans milliseconds (a hot queue) to hours (a backlog). */
const lagBoundaries = MetricBoundaries.fromIterable([
  0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400
])

export const sentMessages = Metric.counter("messaging.client.sent.messages", {
  description: "Jobs enqueued (messages sent to the store)",
  incremental: true
})
export const consumedMessages = Metric.counter("messaging.client.consumed.messages", {
  description: "Job attempts started (messages delivered to a handler)",
  incremental: true
})
export const processDuration = Metric.histogram(
  "messaging.process.duration",
  durationBoundaries,
  "Duration of one job attempt, in seconds"
)
export const jobsFailed = Metric.counter("conveyor.jobs.failed", {
  description: "Job attempts that failed (retried or discarded)",
  incremental: true
})
export const jobsRetried = Metric.counter("conveyor.jobs.retried", {
  description: "Failed job attempts scheduled for a retry",
  incremental: true
})
export const jobsDiscarded = Metric.counter("conveyor.jobs.discarded", {
  description: "Jobs discarded for good (out of attempts, or undecodable)",
  incremental: true
})
export const jobsRescued = Metric.counter("conveyor.jobs.rescued", {
  description: "Running jobs whose lease expired, returned to the queue or discarded by the rescuer",
  incremental: true
})
export const queueLag = Metric.histogram(
  "conveyor.queue.lag",
  lagBoundaries,
  "Time from when a job was due to when its attempt started, in seconds"
)
export const jobsInFlight = Metric.gauge("conveyor.jobs.in_flight", {
  description: "Job attempts running now in this process"
})
export const queueDepth = Metric.gauge("conveyor.queue.depth", {
  description: "Jobs in the store by queue and state, sampled at an interval"
})

/** Metric names whose values are in seconds: OpenTelemetry reads the `unit` label as the unit. */
const seconds = MetricLabel.make("unit", "s")
const system = MetricLabel.make(Attributes.messagingSystem, messagingSystem)
const operation = (name: "send" | "process") => MetricLabel.make(Attributes.operationName, name)
const send = operation("send")
const process = operation("process")

/** The label arrays of one (queue, job name) pair, built once and reused for every update. */
export interface JobSeries {
  readonly queue: ReadonlyArray<MetricLabel.MetricLabel>
  readonly job: ReadonlyArray<MetricLabel.MetricLabel>
  readonly sent: ReadonlyArray<MetricLabel.MetricLabel>
  readonly consumed: ReadonlyArray<MetricLabel.MetricLabel>
  readonly lag: ReadonlyArray<MetricLabel.MetricLabel>
  readonly duration: Readonly<Record<Outcome, ReadonlyArray<MetricLabel.MetricLabel>>>
}

const outcomes: ReadonlyArray<Outcome> = ["completed", "retried", "discarded", "cancelled", "snoozed", "released", "lost"]

const makeSeries = (queueName: string, jobName: string): JobSeries => {
  const queue = [MetricLabel.make(Attributes.destinationName, queueName)]
  const job = [...queue, MetricLabel.make(Attributes.jobName, jobName)]
  const consumed = [system, process, ...job]
  const duration: Partial<Record<Outcome, ReadonlyArray<MetricLabel.MetricLabel>>> = {}
  for (const outcome of outcomes) {
    duration[outcome] = [...consumed, MetricLabel.make(Attributes.jobOutcome, outcome), seconds]
  }
  return {
    queue,
    job,
    sent: [system, send, ...job],
    consumed,
    lag: [...job, seconds],
    duration: duration as Record<Outcome, ReadonlyArray<MetricLabel.MetricLabel>>
  }
}

const seriesByQueue = new Map<string, Map<string, JobSeries>>()

/** The series of a (queue, job name) pair; bounded by the deployment's queues and job kinds. */
export const seriesOf = (queue: string, jobName: string): JobSeries => {
  let byName = seriesByQueue.get(queue)
  if (byName === undefined) seriesByQueue.set(queue, byName = new Map())
  let series = byName.get(jobName)
  if (series === undefined) byName.set(jobName, series = makeSeries(queue, jobName))
  return series
}

/** Jobs sent to the store by one enqueue call. */
export const recordSent = (series: JobSeries, count: number): void => sentMessages.unsafeUpdate(count, series.sent)

/** Jobs one enqueue call attempted and failed to send. */
export const recordSendFailed = (series: JobSeries, count: number, errorType: string): void =>
  sentMessages.unsafeUpdate(count, [...series.sent, MetricLabel.make(Attributes.errorType, errorType)])

/** An attempt starts, `lagSeconds` after the job was due. */
export const recordStarted = (series: JobSeries, lagSeconds: number): void => {
  consumedMessages.unsafeUpdate(1, series.consumed)
  queueLag.unsafeUpdate(Math.max(0, lagSeconds), series.lag)
  jobsInFlight.unsafeModify(1, series.queue)
}

/** An attempt ends with `outcome` after `durationSeconds`. */
export const recordFinished = (series: JobSeries, outcome: Outcome, durationSeconds: number): void => {
  jobsInFlight.unsafeModify(-1, series.queue)
  processDuration.unsafeUpdate(durationSeconds, series.duration[outcome])
  if (outcome === "retried") {
    jobsFailed.unsafeUpdate(1, series.job)
    jobsRetried.unsafeUpdate(1, series.job)
  } else if (outcome === "discarded") {
    jobsFailed.unsafeUpdate(1, series.job)
    jobsDiscarded.unsafeUpdate(1, series.job)
  }
}

const rescuedRetried = [MetricLabel.make(Attributes.jobOutcome, "retried")]
const rescuedDiscarded = [MetricLabel.make(Attributes.jobOutcome, "discarded")]

export const recordRescued = (result: RescueResult): void => {
  if (result.retried.length > 0) jobsRescued.unsafeUpdate(result.retried.length, rescuedRetried)
  if (result.discarded.length > 0) jobsRescued.unsafeUpdate(result.discarded.length, rescuedDiscarded)
}

/**
 * Sample `store.counts` into the queue depth gauge. A (queue, state) pair seen before and
 * missing now is set to zero, so an emptied queue does not keep reporting its last depth.
 */
export const makeQueueDepthSampler = (store: JobStoreShape): Effect.Effect<void, unknown> => {
  const labels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  const labelsOf = (queue: string, state: JobState) => {
    const key = `${queue}\u0000${state}`
    let found = labels.get(key)
    if (found === undefined) {
      labels.set(
        key,
        found = [MetricLabel.make(Attributes.destinationName, queue), MetricLabel.make("conveyor.job.state", state)]
      )
    }
    return found
  }
  return Effect.flatMap(store.counts, (counts) =>
    Effect.sync(() => {
      const stale = new Set(labels.values())
      for (const { count, queue, state } of counts) {
        const series = labelsOf(queue, state)
        stale.delete(series)
        queueDepth.unsafeUpdate(count, series)
      }
      for (const series of stale) queueDepth.unsafeUpdate(0, series)
    }))
}

/**
 * A background fiber sampling queue depth from the store every `interval`. Untraced: an idle
 * system must not emit a span per tick.
 */
export const layerQueueDepth = (interval: Duration.DurationInput = Duration.seconds(15)): Layer.Layer<never, never, JobStore> =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const sample = makeQueueDepthSampler(yield* JobStore)
      yield* sample.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("sampling queue depth failed", cause)),
        Effect.repeat(Schedule.spaced(interval)),
        Effect.withTracerEnabled(false),
        Effect.annotateLogs({ module: "QueueDepth" }),
        Effect.forkScoped
      )
    })
  )
