/**
 * OpenTelemetry export, configured from the standard environment variables and sent as OTLP
 * over HTTP. A signal is exported only when asked for (`OTEL_{SIGNAL}_EXPORTER`) or when an
 * OTLP endpoint is set; with neither, nothing is exported, no SDK object is created, and
 * Effect's own in-memory tracer stays in place.
 */
import { NodeSdk } from "@effect/opentelemetry"
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchLogRecordProcessor, ConsoleLogRecordExporter, type LogRecordProcessor, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs"
import { ConsoleMetricExporter, type MetricReader, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
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

/** Build the exporters a config asks for. Call only inside an Effect: exporters hold sockets. */
export const sdkPartsOf = (config: ExportConfig): SdkParts => {
  const options = (signal: SignalExport) => ({ url: signal.url, headers: { ...Redacted.value(signal.headers) } })
  const { logs, metrics, traces } = config
  return {
    serviceName: config.serviceName,
    serviceVersion: config.serviceVersion,
    spanProcessors: traces.exporter === "otlp"
      ? [new BatchSpanProcessor(new OTLPTraceExporter(options(traces)))]
      : traces.exporter === "console"
      ? [new SimpleSpanProcessor(new ConsoleSpanExporter())]
      : [],
    metricReaders: metrics.exporter === "none" ? [] : [
      new PeriodicExportingMetricReader({
        exporter: metrics.exporter === "otlp" ? new OTLPMetricExporter(options(metrics)) : new ConsoleMetricExporter(),
        exportIntervalMillis: Duration.toMillis(config.metricExportInterval)
      })
    ],
    logRecordProcessors: logs.exporter === "otlp"
      ? [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter(options(logs)) })]
      : logs.exporter === "console"
      ? [new SimpleLogRecordProcessor({ exporter: new ConsoleLogRecordExporter() })]
      : []
  }
}

/**
 * The OpenTelemetry SDK for the given parts: Effect's tracer replaced by OpenTelemetry's when
 * there are span processors, Effect's metrics registered with the readers, log lines also sent
 * to the log processors. Flushed and shut down when the layer's scope closes.
 */
export const layerSdk = <E, R>(parts: Effect.Effect<SdkParts, E, R>): Layer.Layer<never, E, R> =>
  Layer.unwrapEffect(Effect.map(parts, (parts) => {
    if (parts.spanProcessors.length + parts.metricReaders.length + parts.logRecordProcessors.length === 0) {
      return Layer.empty
    }
    return Layer.discard(NodeSdk.layer(() => ({
      resource: {
        serviceName: parts.serviceName,
        ...(parts.serviceVersion === undefined ? {} : { serviceVersion: parts.serviceVersion })
      },
      spanProcessor: parts.spanProcessors,
      metricReader: parts.metricReaders,
      logRecordProcessor: parts.logRecordProcessors,
      shutdownTimeout: Duration.seconds(5)
    })))
  }))
