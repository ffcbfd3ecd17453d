/**
 * Worker settings. A `Context.Reference`: the defaults apply unless a layer overrides them,
 * either with values (`WorkerConfig.layer`) or from the environment (`WorkerConfig.layerConfig`).
 */
import { Config, type ConfigError, Context, Duration, Layer } from "effect"

export interface WorkerSettings {
  /** Jobs running at once in this process, across all queues. Default 10. */
  readonly concurrency: number
  /**
   * Queues to consume and how many of their jobs may run at once here. Default: every queue
   * of the worker's handlers, each limited only by `concurrency`.
   */
  readonly queues: Readonly<Record<string, number>> | undefined
  /** Jobs claimed ahead of free slots and held in the local buffer. Default: `concurrency`. */
  readonly prefetch: number | undefined
  /** Longest wait between polls when idle; wake-ups cut it short. Default 1 s. */
  readonly pollInterval: Duration.Duration
  /** First wait after an empty poll; doubles up to `pollInterval`. Default 50 ms. */
  readonly minPollInterval: Duration.Duration
  /** How long a claim holds a job without a heartbeat. Default 30 s. */
  readonly leaseDuration: Duration.Duration
  /** How often held leases are extended. Default 10 s. */
  readonly heartbeatInterval: Duration.Duration
  /** How often expired leases are looked for. Default 15 s. */
  readonly rescueInterval: Duration.Duration
  /** On shutdown, how long running jobs may finish before they are interrupted and released. Default 25 s. */
  readonly shutdownGrace: Duration.Duration
  /** Identifies this worker in the store and logs. Default: host, pid and a random suffix. */
  readonly workerId: string | undefined
  /**
   * How long finished jobs are kept before the pruner deletes them, per final state.
   * Default: completed and cancelled 1 day, discarded 7 days. `Duration.infinity` keeps them.
   * A completed retention of zero deletes each job as it completes, in the same write: the
   * fastest setting, for systems that keep no history of successful jobs.
   */
  readonly retention: {
    readonly completed: Duration.Duration
    readonly cancelled: Duration.Duration
    readonly discarded: Duration.Duration
  }
  /** How often the pruner runs. Default 1 minute. */
  readonly pruneInterval: Duration.Duration
  /**
   * How each attempt's `process` span relates to the `send` span that enqueued the job:
   * `"link"` (default, per OpenTelemetry's messaging conventions) starts a trace of its own with
   * a span link; `"parent"` makes it a child, so producer and job share one trace.
   */
  readonly producerSpan: "link" | "parent"
}

export const defaults: WorkerSettings = {
  concurrency: 10,
  queues: undefined,
  prefetch: undefined,
  pollInterval: Duration.seconds(1),
  minPollInterval: Duration.millis(50),
  leaseDuration: Duration.seconds(30),
  heartbeatInterval: Duration.seconds(10),
  rescueInterval: Duration.seconds(15),
  shutdownGrace: Duration.seconds(25),
  workerId: undefined,
  retention: { completed: Duration.days(1), cancelled: Duration.days(1), discarded: Duration.days(7) },
  pruneInterval: Duration.minutes(1),
  producerSpan: "link"
}

export class WorkerConfig extends Context.Reference<WorkerConfig>()("conveyor/WorkerConfig", {
  defaultValue: () => defaults
}) {}

export type WorkerOptions = Partial<
  Omit<
    WorkerSettings,
    | "pollInterval"
    | "minPollInterval"
    | "leaseDuration"
    | "heartbeatInterval"
    | "rescueInterval"
    | "shutdownGrace"
    | "pruneInterval"
    | "retention"
  > & {
    readonly pollInterval: Duration.DurationInput
    readonly minPollInterval: Duration.DurationInput
    readonly leaseDuration: Duration.DurationInput
    readonly heartbeatInterval: Duration.DurationInput
    readonly rescueInterval: Duration.DurationInput
    readonly shutdownGrace: Duration.DurationInput
    readonly pruneInterval: Duration.DurationInput
    readonly retention: {
      readonly completed?: Duration.DurationInput
      readonly cancelled?: Duration.DurationInput
      readonly discarded?: Duration.DurationInput
    }
  }
>

const durationKeys = [
  "pollInterval",
  "minPollInterval",
  "leaseDuration",
  "heartbeatInterval",
  "rescueInterval",
  "shutdownGrace",
  "pruneInterval"
] as const

/** Settings from options over a base. */
export const merge = (base: WorkerSettings, options: WorkerOptions): WorkerSettings => {
  const merged: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue
    if (key === "retention") {
      const retention = value as NonNullable<WorkerOptions["retention"]>
      merged.retention = {
        completed: Duration.decode(retention.completed ?? base.retention.completed),
        cancelled: Duration.decode(retention.cancelled ?? base.retention.cancelled),
        discarded: Duration.decode(retention.discarded ?? base.retention.discarded)
      }
      continue
    }
    merged[key] = (durationKeys as ReadonlyArray<string>).includes(key) ? Duration.decode(value as Duration.DurationInput) : value
  }
  return merged as unknown as WorkerSettings
}

/** Settings read from the environment (CONVEYOR_CONCURRENCY, CONVEYOR_POLL_INTERVAL, ...). */
export const config: Config.Config<WorkerSettings> = Config.all({
  concurrency: Config.integer("CONVEYOR_CONCURRENCY").pipe(
    Config.validate({ message: "must be a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(defaults.concurrency),
    Config.withDescription("jobs running at once in this process")
  ),
  pollInterval: Config.duration("CONVEYOR_POLL_INTERVAL").pipe(Config.withDefault(defaults.pollInterval)),
  leaseDuration: Config.duration("CONVEYOR_LEASE_DURATION").pipe(Config.withDefault(defaults.leaseDuration)),
  heartbeatInterval: Config.duration("CONVEYOR_HEARTBEAT_INTERVAL").pipe(Config.withDefault(defaults.heartbeatInterval)),
  shutdownGrace: Config.duration("CONVEYOR_SHUTDOWN_GRACE").pipe(Config.withDefault(defaults.shutdownGrace)),
  workerId: Config.string("CONVEYOR_WORKER_ID").pipe(Config.option),
  retention: Config.all({
    completed: Config.duration("CONVEYOR_RETENTION_COMPLETED").pipe(Config.withDefault(defaults.retention.completed)),
    cancelled: Config.duration("CONVEYOR_RETENTION_CANCELLED").pipe(Config.withDefault(defaults.retention.cancelled)),
    discarded: Config.duration("CONVEYOR_RETENTION_DISCARDED").pipe(Config.withDefault(defaults.retention.discarded))
  }),
  producerSpan: Config.literal("link", "parent")("CONVEYOR_PRODUCER_SPAN").pipe(
    Config.withDefault(defaults.producerSpan),
    Config.withDescription("whether a job's process span links to its send span or is its child")
  )
}).pipe(Config.map((c) => ({
  ...defaults,
  ...c,
  workerId: c.workerId._tag === "Some" ? c.workerId.value : undefined
})))

/** Override settings with values. */
export const layer = (options: WorkerOptions): Layer.Layer<WorkerConfig> =>
  Layer.succeed(WorkerConfig, merge(defaults, options))

/** Read settings from the environment. */
export const layerConfig: Layer.Layer<WorkerConfig, ConfigError.ConfigError> = Layer.effect(WorkerConfig, config)
