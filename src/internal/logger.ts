/**
 * The process's log lines: one JSON object per line when stdout is not a terminal (for a log
 * pipeline), Effect's pretty format when it is (for a person). Every line names the service
 * (the root runtime's: a worker and an API log under different names) and, inside a span, its
 * trace and span ids; a job's lines also carry the annotations the worker puts on them (job id,
 * name, queue, attempt, trigger, tenant).
 *
 * Values go through Effect's structured formatting, so a `Redacted` secret prints as
 * `<redacted>`. Job payloads are never logged by Conveyor.
 */
import { Context, FiberRef, FiberRefs, HashMap, Inspectable, Logger, Option, Tracer } from "effect"

export type LogFormat = "json" | "pretty"

/** The current span's ids, when the line is logged inside a real (exportable) span. */
const spanOf = (context: FiberRefs.FiberRefs): Tracer.AnySpan | undefined => {
  const span = Context.getOption(FiberRefs.getOrDefault(context, FiberRef.currentContext), Tracer.ParentSpan)
  return Option.isSome(span) && span.value.traceId.length === 32 ? span.value : undefined
}

/** Adds `service`, and `traceId`/`spanId` inside a span, to a logger's annotations. */
export const withServiceAndTrace = <M, O>(self: Logger.Logger<M, O>, serviceName: string): Logger.Logger<M, O> =>
  Logger.mapInputOptions(self, (options) => {
    let annotations = HashMap.set(options.annotations, "service", serviceName as unknown)
    const span = spanOf(options.context)
    if (span !== undefined) {
      annotations = HashMap.set(HashMap.set(annotations, "traceId", span.traceId as unknown), "spanId", span.spanId)
    }
    return { ...options, annotations }
  })

/** Keys written first, in this order, so lines read alike. */
const leadingKeys = ["service", "traceId", "spanId"] as const

/** One flat JSON object per line: time, level, message, service, trace ids, then the annotations. */
const jsonLine: Logger.Logger<unknown, string> = Logger.map(Logger.structuredLogger, (entry) => {
  const line: Record<string, unknown> = {
    timestamp: entry.timestamp,
    level: entry.logLevel,
    message: entry.message
  }
  for (const key of leadingKeys) {
    if (key in entry.annotations) line[key] = entry.annotations[key]
  }
  for (const [key, value] of Object.entries(entry.annotations)) {
    if (!(key in line)) line[key] = value
  }
  if (entry.cause !== undefined) line.cause = entry.cause
  if (Object.keys(entry.spans).length > 0) line.logSpans = entry.spans
  return Inspectable.stringifyCircular(line)
})

export const makeLogger = (options: {
  readonly serviceName: string
  readonly format: LogFormat
}): Logger.Logger<unknown, void> =>
  withServiceAndTrace(
    options.format === "json" ? Logger.withConsoleLog(jsonLine) : Logger.prettyLogger({ colors: "auto" }),
    options.serviceName
  )

/** `"json"` unless stdout is a terminal. Read when the logger layer is built, never at import. */
export const detectFormat = (): LogFormat => (process.stdout.isTTY === true ? "pretty" : "json")
