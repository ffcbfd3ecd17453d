/**
 * Spans for jobs, after OpenTelemetry's messaging semantic conventions: a producer span
 * `send {queue}` around each enqueue, whose W3C `traceparent` is stored with the job, and a
 * consumer span `process {queue}` around each attempt, linked to it (or its child, if asked).
 *
 * Everything here goes through Effect's tracer: with no tracer layer the spans are Effect's
 * native in-memory spans (a few small objects, nothing exported), so the hot path pays almost
 * nothing when telemetry is off.
 */
import { Cause, Context, DefaultServices, Effect, Exit, Option, Tracer } from "effect"
import type { InsertResult, JobInsert, JobRecord, Settlement } from "../JobStore.js"

/** The value of `messaging.system` on every span and messaging metric. */
export const messagingSystem = "conveyor"

/** Attribute keys: OpenTelemetry's where one exists, `conveyor.*` for the rest. */
export const Attributes = {
  messagingSystem: "messaging.system",
  operationType: "messaging.operation.type",
  operationName: "messaging.operation.name",
  destinationName: "messaging.destination.name",
  messageId: "messaging.message.id",
  batchMessageCount: "messaging.batch.message_count",
  errorType: "error.type",
  jobName: "conveyor.job.name",
  jobAttempt: "conveyor.job.attempt",
  jobTrigger: "conveyor.job.trigger",
  jobTenantId: "conveyor.job.tenant_id",
  jobOutcome: "conveyor.job.outcome",
  workerId: "conveyor.worker.id"
} as const

/**
 * How an attempt's `process` span relates to the `send` span that enqueued the job: a span
 * link in a trace of its own (the conventions' default: a job may run long after, and many
 * times), or a child of it, so the whole journey is one trace.
 */
export type ProducerSpanMode = "link" | "parent"

// --- W3C trace context -------------------------------------------------------------------

const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-|$)/
const zeroTraceId = "0".repeat(32)
const zeroSpanId = "0".repeat(16)
const isTraceId = (id: string) => id.length === 32 && id !== zeroTraceId && /^[0-9a-f]+$/.test(id)
const isSpanId = (id: string) => id.length === 16 && id !== zeroSpanId && /^[0-9a-f]+$/.test(id)

/** The span's W3C `traceparent`, or null when it has no valid ids (a disabled tracer's no-op span). */
export const traceparentOf = (span: Tracer.AnySpan): string | null =>
  isTraceId(span.traceId) && isSpanId(span.spanId) ? `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}` : null

/** The remote span a stored `traceparent` names, if it is well formed. */
export const parseTraceparent = (traceparent: string | null): Tracer.ExternalSpan | undefined => {
  if (traceparent === null) return undefined
  const match = traceparentPattern.exec(traceparent)
  if (match === null || match[1] === "ff" || match[2] === zeroTraceId || match[3] === zeroSpanId) return undefined
  return Tracer.externalSpan({
    traceId: match[2]!,
    spanId: match[3]!,
    sampled: (Number.parseInt(match[4]!, 16) & 1) === 1
  })
}

// --- error.type --------------------------------------------------------------------------

const typeOf = (error: unknown): string => {
  if (typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string") return error._tag
  return error instanceof Error ? error.name : "_OTHER"
}

/** A low-cardinality `error.type` for a failed attempt: the error's tag or class name. */
export const errorTypeOf = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return typeOf(failure.value)
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) return typeOf(defect.value)
  return Cause.isInterrupted(cause) ? "interrupted" : "_OTHER"
}

// --- send ----------------------------------------------------------------------------------

/**
 * Run `insert` inside a producer span `send {queue}` and hand it the inserts carrying that
 * span's `traceparent`, so each job remembers where it came from. A single job's id becomes
 * the span's `messaging.message.id`.
 */
export const withSendSpan = <E, R>(
  inserts: ReadonlyArray<JobInsert>,
  insert: (inserts: ReadonlyArray<JobInsert>) => Effect.Effect<ReadonlyArray<InsertResult>, E, R>
): Effect.Effect<ReadonlyArray<InsertResult>, E, R> =>
  Effect.tracerWith((tracer) =>
    // With Effect's built-in tracer nobody would see the span, and its trace context would be
    // stored with every job for nothing.
    tracer === builtInTracer ? insert(inserts) : sendSpan(inserts, insert)
  )

const sendSpan = <E, R>(
  inserts: ReadonlyArray<JobInsert>,
  insert: (inserts: ReadonlyArray<JobInsert>) => Effect.Effect<ReadonlyArray<InsertResult>, E, R>
): Effect.Effect<ReadonlyArray<InsertResult>, E, R> => {
  const first = inserts[0]
  const sameQueue = first !== undefined && inserts.every((job) => job.queue === first.queue)
  const attributes: Record<string, unknown> = {
    [Attributes.messagingSystem]: messagingSystem,
    [Attributes.operationType]: "send",
    [Attributes.operationName]: "send",
    ...(sameQueue ? { [Attributes.destinationName]: first.queue } : {}),
    ...(first === undefined ? {} : { [Attributes.jobName]: first.name }),
    ...(inserts.length === 1 ? {} : { [Attributes.batchMessageCount]: inserts.length })
  }
  return Effect.useSpan(
    sameQueue ? `send ${first.queue}` : "send",
    { kind: "producer", attributes, captureStackTrace: false },
    (span) => {
      const traceContext = traceparentOf(span)
      const traced = traceContext === null ? inserts : inserts.map((job) => ({ ...job, traceContext }))
      return insert(traced).pipe(
        Effect.tap((results) => {
          if (results.length === 1) span.attribute(Attributes.messageId, results[0]!.id)
        }),
        Effect.withParentSpan(span)
      )
    }
  )
}

// --- process -------------------------------------------------------------------------------

/** A started `process {queue}` span for one attempt of `record`. */
export const makeProcessSpan = (
  record: JobRecord,
  mode: ProducerSpanMode,
  workerId: string
): Effect.Effect<Tracer.Span> => {
  const attributes: Record<string, unknown> = {
    [Attributes.messagingSystem]: messagingSystem,
    [Attributes.operationType]: "process",
    [Attributes.operationName]: "process",
    [Attributes.destinationName]: record.queue,
    [Attributes.messageId]: record.id,
    [Attributes.jobName]: record.name,
    [Attributes.jobAttempt]: record.attempt,
    [Attributes.jobTrigger]: record.trigger,
    [Attributes.workerId]: workerId
  }
  if (record.tenantId !== null) attributes[Attributes.jobTenantId] = record.tenantId
  const producer = parseTraceparent(record.traceContext)
  const name = `process ${record.queue}`
  // Never a child of whatever span the worker itself was started in.
  if (producer === undefined) {
    return Effect.makeSpan(name, { kind: "consumer", attributes, root: true, captureStackTrace: false })
  }
  return mode === "parent"
    ? Effect.makeSpan(name, { kind: "consumer", attributes, parent: producer, captureStackTrace: false })
    : Effect.makeSpan(name, {
      kind: "consumer",
      attributes,
      root: true,
      links: [{ _tag: "SpanLink", span: producer, attributes: {} }],
      captureStackTrace: false
    })
}

/** What became of an attempt, as a metric label and span attribute. */
export type Outcome = "completed" | "retried" | "discarded" | "cancelled" | "snoozed" | "released" | "lost"

export const outcomeOf = (settlement: Settlement | undefined): Outcome => {
  switch (settlement?._tag) {
    case "Complete":
      return "completed"
    case "Retry":
      return "retried"
    case "Discard":
      return "discarded"
    case "Cancel":
      return "cancelled"
    case "Snooze":
      return "snoozed"
    case "Release":
      return "released"
    case undefined:
      return "lost"
  }
}

/**
 * End an attempt's span. Only attempts that spent an attempt in failure (retried, discarded)
 * end in error, with `error.type`; a snooze or a cancel is an outcome the handler chose, and a
 * shutdown release or lost lease ends as the interruption it was.
 */
export const endProcessSpan = (
  span: Tracer.Span,
  outcome: Outcome,
  exit: Exit.Exit<unknown, unknown>,
  endTime: bigint
): void => {
  span.attribute(Attributes.jobOutcome, outcome)
  if (Exit.isFailure(exit) && (outcome === "retried" || outcome === "discarded")) {
    span.attribute(Attributes.errorType, errorTypeOf(exit.cause))
    span.end(endTime, exit)
  } else if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) {
    span.end(endTime, exit)
  } else {
    span.end(endTime, Exit.void)
  }
}

/** Effect's default tracer (in-memory spans, exported nowhere): what runs when no tracer layer is provided. */
export const builtInTracer: Tracer.Tracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)
