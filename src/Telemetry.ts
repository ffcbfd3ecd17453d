/**
 * Telemetry: every job traced, measured and logged, after OpenTelemetry's messaging
 * conventions. See docs/telemetry.md for the span, metric and log names.
 *
 * The instrumentation itself is always on and costs next to nothing until something is
 * exported: spans go through Effect's tracer, metrics into Effect's registry, log lines through
 * Effect's logger. The layers here decide where they go.
 *
 * ```ts
 * const MainLive = Layer.mergeAll(WorkerLive, Telemetry.layerQueueDepth(), Telemetry.layerMetricsServer()).pipe(
 *   Layer.provide(StoreLive),
 *   Layer.provide(Telemetry.layerFromEnv({ serviceName: "billing-worker" }))
 * )
 * ```
 */
import type { ServeError } from "@effect/platform/HttpServerError"
import type { LogRecordProcessor } from "@opentelemetry/sdk-logs"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Config, type ConfigError, Effect, Layer, Logger, LogLevel } from "effect"
import { detectFormat, type LogFormat, makeLogger } from "./internal/logger.js"
import * as InternalMetrics from "./internal/metrics.js"
import type { MetricsServerOptions } from "./internal/metricsServer.js"
import { exportConfig, layerSdk, makeSdkParts } from "./internal/otel.js"
import * as Prometheus from "./internal/prometheus.js"

export { type LogFormat } from "./internal/logger.js"
export { tracedStore, type TracedStoreOptions } from "./internal/tracedStore.js"
export { Attributes, messagingSystem, parseTraceparent, traceparentOf, type ProducerSpanMode } from "./internal/tracing.js"
export { layerQueueDepth } from "./internal/metrics.js"
export type { MetricsServerOptions } from "./internal/metricsServer.js"

/** Conveyor's metrics, as Effect metrics (read them with `Metric.value`, or scrape `/metrics`). */
export const metrics = {
  sentMessages: InternalMetrics.sentMessages,
  consumedMessages: InternalMetrics.consumedMessages,
  processDuration: InternalMetrics.processDuration,
  jobsFailed: InternalMetrics.jobsFailed,
  jobsRetried: InternalMetrics.jobsRetried,
  jobsDiscarded: InternalMetrics.jobsDiscarded,
  jobsRescued: InternalMetrics.jobsRescued,
  queueLag: InternalMetrics.queueLag,
  jobsInFlight: InternalMetrics.jobsInFlight,
  queueDepth: InternalMetrics.queueDepth
} as const

// --- logs ----------------------------------------------------------------------------------

export interface LoggerOptions {
  /** The root runtime's name: a worker and an API should log under different ones. */
  readonly serviceName: string
  /** `"auto"` (default): JSON unless stdout is a terminal. */
  readonly format?: LogFormat | "auto"
  /** Lines below this level are dropped. Default `Info`. */
  readonly level?: LogLevel.LogLevel
}

/** The logger itself, for composing by hand. */
export const logger = (options: { readonly serviceName: string; readonly format: LogFormat }): Logger.Logger<unknown, void> =>
  makeLogger(options)

/**
 * Replace the default logger (and the pretty one `NodeRuntime.runMain` installs) with
 * Conveyor's: service name, trace and span ids on every line, JSON or pretty.
 */
export const layerLogger = (options: LoggerOptions): Layer.Layer<never> =>
  Layer.unwrapEffect(Effect.sync(() => {
    const format = options.format === undefined || options.format === "auto" ? detectFormat() : options.format
    return Layer.mergeAll(
      Logger.remove(Logger.prettyLoggerDefault),
      Logger.replace(Logger.defaultLogger, makeLogger({ serviceName: options.serviceName, format })),
      Logger.minimumLogLevel(options.level ?? LogLevel.Info)
    )
  }))

// --- the whole thing -----------------------------------------------------------------------

export interface TelemetryOptions extends LoggerOptions {
  readonly serviceVersion?: string
  /** Where spans go (e.g. a `BatchSpanProcessor` over an exporter). None: Effect's tracer stays. */
  readonly spanProcessors?: ReadonlyArray<SpanProcessor>
  /** Readers Conveyor's (and every Effect) metric is registered with. */
  readonly metricReaders?: ReadonlyArray<MetricReader>
  /** Where log lines go besides stdout. */
  readonly logRecordProcessors?: ReadonlyArray<LogRecordProcessor>
}

/**
 * Telemetry with explicit OpenTelemetry processors and readers (tests, custom exporters).
 * Provide it to the layers whose spans, metrics and logs should be exported.
 */
export const layer = (options: TelemetryOptions): Layer.Layer<never> =>
  Layer.mergeAll(
    layerSdk(Effect.succeed({
      serviceName: options.serviceName,
      serviceVersion: options.serviceVersion,
      spanProcessors: options.spanProcessors ?? [],
      metricReaders: options.metricReaders ?? [],
      logRecordProcessors: options.logRecordProcessors ?? []
    })),
    layerLogger(options)
  )

const logFormatConfig = Config.literal("json", "pretty", "auto")("CONVEYOR_LOG_FORMAT").pipe(
  Config.withDefault("auto" as const),
  Config.withDescription("json, pretty, or auto (JSON unless stdout is a terminal)")
)
const logLevelConfig = Config.logLevel("CONVEYOR_LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))

/**
 * Everything on, from the standard environment variables: `OTEL_SERVICE_NAME` (else
 * `serviceName`), `OTEL_EXPORTER_OTLP_ENDPOINT` and the per-signal `..._TRACES_/METRICS_/
 * LOGS_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS` (a secret: kept `Redacted`),
 * `OTEL_TRACES_EXPORTER`/`OTEL_METRICS_EXPORTER`/`OTEL_LOGS_EXPORTER` (`otlp`, `console`,
 * `none`), `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED`; and
 * `CONVEYOR_LOG_FORMAT`, `CONVEYOR_LOG_LEVEL`. OTLP goes over HTTP. With none of them set,
 * nothing is exported and logs still go to stdout.
 */
export const layerFromEnv = (options: { readonly serviceName: string }): Layer.Layer<never, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const config = yield* exportConfig(options.serviceName)
    const format = yield* logFormatConfig
    const level = yield* logLevelConfig
    return Layer.mergeAll(
      layerSdk(makeSdkParts(config)),
      layerLogger({ serviceName: config.serviceName, format, level })
    )
  }))

// --- Prometheus ----------------------------------------------------------------------------

/** Every Effect metric in the process now, as Prometheus text exposition (0.0.4). */
export const prometheusText: Effect.Effect<string> = Prometheus.prometheusText

/** The `Content-Type` of `prometheusText`. */
export const prometheusContentType: string = Prometheus.contentType

/**
 * A small HTTP server for `GET /metrics`. Scrapes are not traced. The HTTP server is loaded
 * when this layer is built, not when Conveyor is imported: a worker without it never loads
 * the HTTP stack. (`AdminServer.metricsRouter` in `conveyor/admin` mounts the same route in
 * your own `HttpRouter`.)
 */
export const layerMetricsServer = (options: MetricsServerOptions = {}): Layer.Layer<never, ServeError> =>
  Layer.unwrapEffect(Effect.map(
    Effect.promise(() => import("./internal/metricsServer.js")),
    (server) => server.layerMetricsServer(options)
  ))

/** `layerMetricsServer` on `CONVEYOR_METRICS_PORT` (default 9464) and `CONVEYOR_METRICS_HOST`. */
export const layerMetricsServerConfig: Layer.Layer<never, ServeError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      port: Config.port("CONVEYOR_METRICS_PORT").pipe(Config.withDefault(9464)),
      host: Config.string("CONVEYOR_METRICS_HOST").pipe(Config.withDefault("0.0.0.0"))
    }),
    layerMetricsServer
  )
)
