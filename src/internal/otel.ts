/**
 * OpenTelemetry export, configured from the standard environment variables and sent as OTLP
 * over HTTP. A signal is exported only when asked for (`OTEL_{SIGNAL}_EXPORTER`) or when an
 * OTLP endpoint is set; with neither, nothing is exported, no SDK object is created, and
 * Effect's own in-memory tracer stays in place.
 *
 * The SDK and exporter packages are loaded when export is turned on, not when Conveyor is
 * imported: a process that exports nothing does not pay their start-up time.
 */
import type { LogRecordProcessor } from "@opentelemetry/sdk-logs"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Config, Duration, Effect, Layer, Option, Redacted } from "effect"

export type ExporterKind = "otlp" | "console" | "none"

export interface SignalExport {
  readonly exporter: ExporterKind
  /** The full OTLP URL of the signal (`.../v1/traces`). */
  readonly url: string
  readonly headers: Redacted.Redacted<Readonly<Record<string, string>>>
}

export interface ExportConfig {
  readonly serviceName: string
  readonly serviceVersion: string | undefined
  readonly traces: SignalExport
  readonly metrics: SignalExport
  readonly logs: SignalExport
  readonly metricExportInterval: Duration.Duration
}

type Signal = "traces" | "metrics" | "logs"

const defaultEndpoint = "http://localhost:4318"

/** `k1=v1,k2=v2`, values percent-encoded, as the OTLP exporter specification has it. */
export const parseHeaders = (text: string): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const pair of text.split(",")) {
    const at = pair.indexOf("=")
    if (at <= 0) continue
    const key = pair.slice(0, at).trim()
    const value = pair.slice(at + 1).trim()
    try {
      headers[key] = decodeURIComponent(value)
    } catch {
      headers[key] = value
    }
  }
  return headers
}

const exporterKind = (name: string) =>
  Config.literal("otlp", "console", "none")(name).pipe(
    Config.option,
    Config.withDescription("otlp, console or none")
  )

const signalConfig = (signal: Signal): Config.Config<SignalExport> => {
  const upper = signal.toUpperCase()
  return Config.all({
    disabled: Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
    exporter: exporterKind(`OTEL_${upper}_EXPORTER`),
    endpoint: Config.string("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(Config.option),
    signalEndpoint: Config.string(`OTEL_EXPORTER_OTLP_${upper}_ENDPOINT`).pipe(Config.option),
    headers: Config.redacted("OTEL_EXPORTER_OTLP_HEADERS").pipe(Config.option),
    signalHeaders: Config.redacted(`OTEL_EXPORTER_OTLP_${upper}_HEADERS`).pipe(Config.option)
  }).pipe(Config.map(({ disabled, endpoint, exporter, headers, signalEndpoint, signalHeaders }): SignalExport => {
    const hasEndpoint = Option.isSome(endpoint) || Option.isSome(signalEndpoint)
    const kind: ExporterKind = disabled
      ? "none"
      : Option.getOrElse(exporter, (): ExporterKind => (hasEndpoint ? "otlp" : "none"))
    // A signal's own endpoint is used as is; the general one gets the signal's path.
    const url = Option.getOrElse(
      signalEndpoint,
      () => `${Option.getOrElse(endpoint, () => defaultEndpoint).replace(/\/+$/, "")}/v1/${signal}`
    )
    const parsed = {
      ...Option.match(headers, { onNone: () => ({}), onSome: (text) => parseHeaders(Redacted.value(text)) }),
      ...Option.match(signalHeaders, { onNone: () => ({}), onSome: (text) => parseHeaders(Redacted.value(text)) })
    }
    return { exporter: kind, url, headers: Redacted.make(parsed) }
  }))
}

/** The export settings from the environment; `serviceName` is used when `OTEL_SERVICE_NAME` is unset. */
export const exportConfig = (serviceName: string): Config.Config<ExportConfig> =>
  Config.all({
    serviceName: Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault(serviceName)),
    serviceVersion: Config.string("OTEL_SERVICE_VERSION").pipe(Config.option, Config.map(Option.getOrUndefined)),
    traces: signalConfig("traces"),
    metrics: signalConfig("metrics"),
    logs: signalConfig("logs"),
    metricExportInterval: Config.integer("OTEL_METRIC_EXPORT_INTERVAL").pipe(
      Config.withDefault(60_000),
      Config.map(Duration.millis)
    )
  })

/** What to hand the OpenTelemetry SDK; empty lists mean that signal is not exported. */
export interface SdkParts {
  readonly serviceName: string
  readonly serviceVersion?: string | undefined
  readonly spanProcessors: ReadonlyArray<SpanProcessor>
  readonly metricReaders: ReadonlyArray<MetricReader>
  readonly logRecordProcessors: ReadonlyArray<LogRecordProcessor>
}

/** Build the exporters a config asks for, loading only the packages they need. */
export const makeSdkParts = (config: ExportConfig): Effect.Effect<SdkParts> =>
  Effect.gen(function*() {
    const options = (signal: SignalExport) => ({ url: signal.url, headers: { ...Redacted.value(signal.headers) } })
    const { logs, metrics, traces } = config
    const spanProcessors: Array<SpanProcessor> = []
    const metricReaders: Array<MetricReader> = []
    const logRecordProcessors: Array<LogRecordProcessor> = []
    if (traces.exporter !== "none") {
      const sdk = yield* load(() => import("@opentelemetry/sdk-trace-base"))
      if (traces.exporter === "otlp") {
        const { OTLPTraceExporter } = yield* load(() => import("@opentelemetry/exporter-trace-otlp-http"))
        spanProcessors.push(new sdk.BatchSpanProcessor(new OTLPTraceExporter(options(traces))))
      } else {
        spanProcessors.push(new sdk.SimpleSpanProcessor(new sdk.ConsoleSpanExporter()))
      }
    }
    if (metrics.exporter !== "none") {
      const sdk = yield* load(() => import("@opentelemetry/sdk-metrics"))
      const exporter = metrics.exporter === "otlp"
        ? new (yield* load(() => import("@opentelemetry/exporter-metrics-otlp-http"))).OTLPMetricExporter(options(metrics))
        : new sdk.ConsoleMetricExporter()
      metricReaders.push(
        new sdk.PeriodicExportingMetricReader({
          exporter,
          exportIntervalMillis: Duration.toMillis(config.metricExportInterval)
        })
      )
    }
    if (logs.exporter !== "none") {
      const sdk = yield* load(() => import("@opentelemetry/sdk-logs"))
      const exporter = logs.exporter === "otlp"
        ? new (yield* load(() => import("@opentelemetry/exporter-logs-otlp-http"))).OTLPLogExporter(options(logs))
        : new sdk.ConsoleLogRecordExporter()
      logRecordProcessors.push(
        logs.exporter === "otlp" ? new sdk.BatchLogRecordProcessor({ exporter }) : new sdk.SimpleLogRecordProcessor({ exporter })
      )
    }
    return {
      serviceName: config.serviceName,
      serviceVersion: config.serviceVersion,
      spanProcessors,
      metricReaders,
      logRecordProcessors
    }
  })

/** A module the package depends on; failing to load it is a defect of the installation. */
const load = <A>(importer: () => Promise<A>): Effect.Effect<A> => Effect.promise(importer)

/**
 * The OpenTelemetry SDK for the given parts: Effect's tracer replaced by OpenTelemetry's when
 * there are span processors, Effect's metrics registered with the readers, log lines also sent
 * to the log processors. Flushed and shut down when the layer's scope closes.
 */
export const layerSdk = <E, R>(parts: Effect.Effect<SdkParts, E, R>): Layer.Layer<never, E, R> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const sdk = yield* parts
    if (sdk.spanProcessors.length + sdk.metricReaders.length + sdk.logRecordProcessors.length === 0) {
      return Layer.empty
    }
    const NodeSdk = yield* load(() => import("@effect/opentelemetry/NodeSdk"))
    return Layer.discard(NodeSdk.layer(() => ({
      resource: {
        serviceName: sdk.serviceName,
        ...(sdk.serviceVersion === undefined ? {} : { serviceVersion: sdk.serviceVersion })
      },
      spanProcessor: sdk.spanProcessors,
      metricReader: sdk.metricReaders,
      logRecordProcessor: sdk.logRecordProcessors,
      shutdownTimeout: Duration.seconds(5)
    })))
  }))
