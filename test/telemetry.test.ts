import { HttpClient, HttpClientResponse, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { SpanKind, SpanStatusCode } from "@opentelemetry/api"
import { type CollectionResult, DataPointType, MetricReader } from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Metric, Redacted, Schema, TestClock } from "effect"
import { Job, JobClient, JobContext, JobStore, Telemetry, Worker } from "conveyor"
import { AdminServer } from "conveyor/admin"
import * as Testing from "conveyor/testing"
import { exportConfig } from "../src/internal/otel.js"
import { finishedJobs, start } from "./helpers.js"

/** Collects on demand, as a Prometheus or OTLP pull would. */
class TestMetricReader extends MetricReader {
  protected override onShutdown() {
    return Promise.resolve()
  }
  protected override onForceFlush() {
    return Promise.resolve()
  }
}

/** Exporters and readers stop with their provider: each test's layer gets new ones. */
let spans = new InMemorySpanExporter()
let reader = new TestMetricReader()
const TelemetryTest = Layer.unwrapEffect(Effect.sync(() => {
  spans = new InMemorySpanExporter()
  reader = new TestMetricReader()
  return Telemetry.layer({
    serviceName: "conveyor-test",
    format: "json",
    spanProcessors: [new SimpleSpanProcessor(spans)],
    metricReaders: [reader]
  })
}))
/** The in-memory store and client, traced, with telemetry exported to memory. */
const TestLive = Layer.merge(Testing.layer, TelemetryTest)

class Boom extends Schema.TaggedError<Boom>()("Boom", { reason: Schema.String }) {}

let counter = 0
/** A queue of its own per test: metrics and spans are global, so tests tell theirs apart by queue. */
const freshQueue = (label: string) => `${label}-${counter++}`

const spanNamed = (name: string): ReadableSpan => {
  const found = spans.getFinishedSpans().filter((span) => span.name === name)
  expect(found, `one span named "${name}"`).toHaveLength(1)
  return found[0]!
}

const collectMetrics = Effect.promise(() => reader.collect()).pipe(Effect.map((result: CollectionResult) => result))
const dataPoints = (result: CollectionResult, name: string, queue: string) =>
  result.resourceMetrics.scopeMetrics
    .flatMap((scope) => scope.metrics)
    .filter((metric) => metric.descriptor.name === name)
    .flatMap((metric) => metric.dataPoints.map((point) => ({ metric, point })))
    .filter(({ point }) => point.attributes["messaging.destination.name"] === queue)

describe("Telemetry", () => {
  it.scoped("a job enqueued in a traced request runs in a process span linked to its send span", () =>
    Effect.gen(function*() {
      const queue = freshQueue("signup")
      const Welcome = Job.make({ name: "welcome", queue, payload: Schema.Struct({ to: Schema.String }) })
      const handler = Welcome.handler(() => Effect.void.pipe(Effect.withSpan("render template")))
      const worker = yield* start(Worker.layer({ handlers: [handler], workerId: "w1" }))
      const done = yield* finishedJobs(worker, 1)
      const id = yield* JobClient.pipe(
        Effect.flatMap((client) => client.enqueue(Welcome, { to: "ada@example.com" }, { tenantId: "acme" })),
        Effect.withSpan("POST /signup", { kind: "server" })
      )
      yield* done

      const request = spanNamed("POST /signup")
      const send = spanNamed(`send ${queue}`)
      const process = spanNamed(`process ${queue}`)
      const render = spanNamed("render template")

      expect(send.kind).toBe(SpanKind.PRODUCER)
      expect(send.parentSpanContext?.spanId).toBe(request.spanContext().spanId)
      expect(send.attributes).toMatchObject({
        "messaging.system": "conveyor",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": queue,
        "messaging.message.id": id,
        "conveyor.job.name": "welcome"
      })
      const stored = yield* Testing.getJob(id)
      expect(stored.traceContext).toBe(`00-${send.spanContext().traceId}-${send.spanContext().spanId}-01`)

      expect(process.kind).toBe(SpanKind.CONSUMER)
      expect(process.parentSpanContext).toBeUndefined()
      expect(process.spanContext().traceId).not.toBe(send.spanContext().traceId)
      expect(process.links.map((link) => link.context)).toMatchObject([
        { traceId: send.spanContext().traceId, spanId: send.spanContext().spanId }
      ])
      expect(process.attributes).toEqual({
        "messaging.system": "conveyor",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": queue,
        "messaging.message.id": id,
        "conveyor.job.name": "welcome",
        "conveyor.job.attempt": 1,
        "conveyor.job.trigger": "queue",
        "conveyor.job.tenant_id": "acme",
        "conveyor.job.outcome": "completed",
        "conveyor.worker.id": "w1"
      })
      expect(process.status.code).toBe(SpanStatusCode.OK)
      expect(render.parentSpanContext?.spanId).toBe(process.spanContext().spanId)

      // Store calls are traced at the boundary: the insert nests under the send span.
      expect(spanNamed("JobStore.insert").parentSpanContext?.spanId).toBe(send.spanContext().spanId)
    }).pipe(Effect.provide(TestLive)))

  it.scoped("with producerSpan \"parent\", the process span is a child of the send span", () =>
    Effect.gen(function*() {
      const queue = freshQueue("parented")
      const Task = Job.make({ name: "task", queue, payload: Schema.Struct({}) })
      const worker = yield* start(Worker.layer({ handlers: [Task.handler(() => Effect.void)], producerSpan: "parent" }))
      const done = yield* finishedJobs(worker, 1)
      yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Task, {})))
      yield* done
      const send = spanNamed(`send ${queue}`)
      const process = spanNamed(`process ${queue}`)
      expect(process.spanContext().traceId).toBe(send.spanContext().traceId)
      expect(process.parentSpanContext?.spanId).toBe(send.spanContext().spanId)
      expect(process.links).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scoped("a failed attempt ends its span in error with error.type", () =>
    Effect.gen(function*() {
      const queue = freshQueue("failing")
      const Flaky = Job.make({ name: "flaky", queue, payload: Schema.Struct({}), error: Boom, maxAttempts: 2 })
      const handler = Flaky.handler(() => Effect.fail(new Boom({ reason: "no" })))
      const worker = yield* start(Worker.layer({ handlers: [handler] }))
      const done = yield* finishedJobs(worker, 1)
      yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Flaky, {})))
      const [finished] = yield* done
      expect(finished!.outcome).toBe("Retry")
      const process = spanNamed(`process ${queue}`)
      expect(process.attributes["error.type"]).toBe("Boom")
      expect(process.attributes["conveyor.job.outcome"]).toBe("retried")
      expect(process.status.code).toBe(SpanStatusCode.ERROR)
    }).pipe(Effect.provide(TestLive)))

  it.scoped("counters and the duration histogram (in seconds) move as jobs run", () =>
    Effect.gen(function*() {
      const queue = freshQueue("metered")
      const Slow = Job.make({ name: "slow", queue, payload: Schema.Struct({ fail: Schema.Boolean }), error: Boom, maxAttempts: 1 })
      const handler = Slow.handler(({ fail }) =>
        fail ? Effect.fail(new Boom({ reason: "no" })) : Effect.sleep("1500 millis")
      )
      const worker = yield* start(Worker.layer({ handlers: [handler] }))
      const done = yield* Effect.fork(yield* finishedJobs(worker, 3))
      yield* JobClient.pipe(Effect.flatMap((client) =>
        client.enqueueMany(Slow, [{ payload: { fail: false } }, { payload: { fail: false } }, { payload: { fail: true } }])
      ))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(done)

      const result = yield* collectMetrics
      const sum = (name: string) =>
        dataPoints(result, name, queue).reduce((total, { point }) => total + (point.value as number), 0)
      expect(sum("messaging.client.sent.messages")).toBe(3)
      expect(sum("messaging.client.consumed.messages")).toBe(3)
      expect(sum("conveyor.jobs.failed")).toBe(1)
      expect(sum("conveyor.jobs.discarded")).toBe(1)
      expect(sum("conveyor.jobs.retried")).toBe(0)
      expect(sum("conveyor.jobs.in_flight")).toBe(0)

      const durations = dataPoints(result, "messaging.process.duration", queue)
      const completed = durations.find(({ point }) => point.attributes["conveyor.job.outcome"] === "completed")!
      const histogram = completed.point.value as { count: number; sum: number }
      expect(completed.metric.descriptor.unit).toBe("s")
      expect(completed.metric.dataPointType).toBe(DataPointType.HISTOGRAM)
      expect(histogram.count).toBe(2)
      expect(histogram.sum).toBeCloseTo(3, 6)
      const discarded = durations.find(({ point }) => point.attributes["conveyor.job.outcome"] === "discarded")!
      expect((discarded.point.value as { count: number }).count).toBe(1)
      expect(completed.point.attributes).toMatchObject({
        "messaging.system": "conveyor",
        "messaging.operation.name": "process",
        "conveyor.job.name": "slow"
      })
    }).pipe(Effect.provide(TestLive)))

  it.scoped("measures queue lag from due to started, and counts rescued jobs", () =>
    Effect.gen(function*() {
      const queue = freshQueue("lagging")
      const Task = Job.make({ name: "task", queue, payload: Schema.Struct({}) })
      const client = yield* JobClient
      const store = yield* JobStore
      yield* client.enqueueMany(Task, [{ payload: {} }, { payload: {} }])
      // One job is claimed by a worker that dies: its lease expires and the rescuer returns it.
      yield* store.claim({ workerId: "dead", queues: [{ queue, limit: 1 }], leaseDuration: Duration.seconds(5) })
      yield* TestClock.adjust("8 seconds")
      const worker = yield* start(Worker.layer({ handlers: [Task.handler(() => Effect.void)], rescueInterval: "1 second" }))
      const done = yield* Effect.fork(yield* finishedJobs(worker, 2))
      for (let i = 0; i < 5; i++) yield* TestClock.adjust("1 second")
      yield* Fiber.join(done)

      const result = yield* collectMetrics
      const lag = dataPoints(result, "conveyor.queue.lag", queue)
      expect(lag).toHaveLength(1)
      expect(lag[0]!.metric.descriptor.unit).toBe("s")
      const { count, sum } = lag[0]!.point.value as { count: number; sum: number }
      expect(count).toBe(2)
      // The waiting job started 8 s after it was due; the rescued one shortly after its retry time.
      expect(sum).toBeGreaterThanOrEqual(8)
      const rescued = result.resourceMetrics.scopeMetrics
        .flatMap((scope) => scope.metrics)
        .filter((metric) => metric.descriptor.name === "conveyor.jobs.rescued")
        .flatMap((metric) => metric.dataPoints.map((point) => point.value as number))
        .reduce((total, value) => total + value, 0)
      expect(rescued).toBeGreaterThanOrEqual(1)
    }).pipe(Effect.provide(TestLive)))

  it.scoped("an idle worker's polls emit no store spans", () =>
    Effect.gen(function*() {
      const queue = freshQueue("idle")
      const Task = Job.make({ name: "task", queue, payload: Schema.Struct({}) })
      yield* start(Worker.layer({ handlers: [Task.handler(() => Effect.void)], rescueInterval: "1 second" }))
      for (let i = 0; i < 30; i++) yield* TestClock.adjust("1 second")
      expect(spans.getFinishedSpans().map((span) => span.name)).toEqual([])
    }).pipe(Effect.provide(TestLive)))

  it.scoped("log lines inside a job carry the job's annotations, trace and span ids, and no payload or secret", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          const original = console.log
          console.log = (line: unknown) => void lines.push(String(line))
          return original
        }),
        (original) => Effect.sync(() => void (console.log = original))
      )
      const queue = freshQueue("logged")
      const Notify = Job.make({ name: "notify", queue, payload: Schema.Struct({ card: Schema.String }) })
      const handler = Notify.handler(() =>
        Effect.gen(function*() {
          const job = yield* JobContext
          yield* Effect.logInfo(`notifying, attempt ${job.attempt}`).pipe(
            Effect.annotateLogs({ apiKey: Redacted.make("hunter2") }),
            Effect.withSpan("notify step")
          )
        })
      )
      const worker = yield* start(Worker.layer({ handlers: [handler] }))
      const done = yield* finishedJobs(worker, 1)
      const id = yield* JobClient.pipe(
        Effect.flatMap((client) => client.enqueue(Notify, { card: "4242-4242-4242-4242" }, { tenantId: "acme" }))
      )
      yield* done

      const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
      const entry = entries.find((e) => e.message === "notifying, attempt 1")
      const step = spanNamed("notify step")
      expect(entry).toMatchObject({
        level: "INFO",
        service: "conveyor-test",
        jobId: id,
        jobName: "notify",
        queue,
        attempt: 1,
        trigger: "queue",
        tenantId: "acme",
        traceId: step.spanContext().traceId,
        spanId: step.spanContext().spanId,
        apiKey: "<redacted>"
      })
      expect(step.spanContext().traceId).toBe(spanNamed(`process ${queue}`).spanContext().traceId)
      expect(lines.join("\n")).not.toContain("4242-4242")
      expect(lines.join("\n")).not.toContain("hunter2")
    }).pipe(Effect.provide(TestLive)))

  it.scoped("samples queue depth by queue and state, zeroing states that emptied", () =>
    Effect.gen(function*() {
      const queue = freshQueue("depth")
      const Task = Job.make({ name: "task", queue, payload: Schema.Struct({}) })
      yield* Layer.build(Telemetry.layerQueueDepth("10 seconds"))
      const client = yield* JobClient
      const store = yield* JobStore
      yield* client.enqueueMany(Task, [{ payload: {} }, { payload: {} }, { payload: {}, options: { delay: "1 hour" } }])
      yield* TestClock.adjust("10 seconds")
      const depth = (state: string) => `conveyor_queue_depth{messaging_destination_name="${queue}",conveyor_job_state="${state}"}`
      let text = yield* Telemetry.prometheusText
      expect(text).toContain(`${depth("available")} 2`)
      expect(text).toContain(`${depth("scheduled")} 1`)

      yield* store.claim({ workerId: "w", queues: [{ queue, limit: 10 }], leaseDuration: Duration.seconds(30) })
      yield* TestClock.adjust("10 seconds")
      text = yield* Telemetry.prometheusText
      expect(text).toContain(`${depth("available")} 0`)
      expect(text).toContain(`${depth("running")} 2`)
    }).pipe(Effect.provide(TestLive)))

  it.scoped("GET /metrics serves valid Prometheus text exposition over HTTP", () =>
    Effect.gen(function*() {
      const queue = freshQueue("scraped")
      const Task = Job.make({ name: "task", queue, payload: Schema.Struct({}) })
      const worker = yield* start(Worker.layer({ handlers: [Task.handler(() => Effect.void)] }))
      const done = yield* finishedJobs(worker, 1)
      yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Task, {})))
      yield* done

      const response = yield* HttpClient.get("/metrics")
      expect(response.status).toBe(200)
      expect(response.headers["content-type"]).toBe(Telemetry.prometheusContentType)
      const text = yield* response.text

      // Every line is a HELP or TYPE comment or a sample: name{label="value",...} number.
      const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$/
      const lines = text.trimEnd().split("\n")
      for (const line of lines) {
        if (line.startsWith("# HELP ")) continue
        if (line.startsWith("# TYPE ")) {
          expect(line).toMatch(/^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$/)
          continue
        }
        expect(line).toMatch(sample)
      }
      const labels = `messaging_destination_name="${queue}",conveyor_job_name="task"`
      expect(text).toContain("# TYPE messaging_client_sent_messages counter")
      expect(text).toContain(`messaging_client_sent_messages_total{messaging_system="conveyor",messaging_operation_name="send",${labels}} 1`)
      expect(text).toContain("# TYPE messaging_process_duration_seconds histogram")
      expect(text).toMatch(new RegExp(`messaging_process_duration_seconds_bucket\\{[^}]*${labels},conveyor_job_outcome="completed",le="\\+Inf"\\} 1`))
      expect(text).toMatch(new RegExp(`messaging_process_duration_seconds_count\\{[^}]*${labels},conveyor_job_outcome="completed"\\} 1`))
    }).pipe(
      Effect.provide(HttpServer.serve(AdminServer.metricsRouter).pipe(Layer.provideMerge(NodeHttpServer.layerTest))),
      Effect.provide(TestLive)
    ))
})

describe("Telemetry helpers", () => {
  it("round-trips a span through a W3C traceparent and rejects malformed ones", () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    const span = Telemetry.parseTraceparent(traceparent)!
    expect(span).toMatchObject({ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", sampled: true })
    expect(Telemetry.traceparentOf(span)).toBe(traceparent)
    expect(Telemetry.parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")?.sampled).toBe(false)
    for (const bad of [null, "", "garbage", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"]) {
      expect(Telemetry.parseTraceparent(bad)).toBeUndefined()
    }
  })

  it.effect("renders any Effect metric as Prometheus text, escaping label values", () =>
    Effect.gen(function*() {
      const name = `app.custom.events.${counter++}`
      const metric = Metric.counter(name, { description: "Custom events", incremental: true }).pipe(
        Metric.tagged("path", "a\"b\\c\nd")
      )
      yield* Metric.update(metric, 3)
      const text = yield* Telemetry.prometheusText
      const promName = name.replace(/\./g, "_")
      expect(text).toContain(`# HELP ${promName} Custom events\n# TYPE ${promName} counter\n`)
      expect(text).toContain(`${promName}_total{path="a\\"b\\\\c\\nd"} 3\n`)
    }))
})

describe("Telemetry configuration", () => {
  const fromEnv = (env: Record<string, string>) =>
    Effect.withConfigProvider(exportConfig("my-worker"), ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.effect("exports nothing when no OpenTelemetry variable is set", () =>
    Effect.gen(function*() {
      const config = yield* fromEnv({})
      expect(config.serviceName).toBe("my-worker")
      expect([config.traces.exporter, config.metrics.exporter, config.logs.exporter]).toEqual(["none", "none", "none"])
    }))

  it.effect("exports every signal over OTLP/HTTP once an endpoint is set, headers kept secret", () =>
    Effect.gen(function*() {
      const config = yield* fromEnv({
        OTEL_SERVICE_NAME: "billing-worker",
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://logs:4318/custom",
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20s3cret,x-team=jobs",
        OTEL_METRICS_EXPORTER: "none"
      })
      expect(config.serviceName).toBe("billing-worker")
      expect(config.traces).toMatchObject({ exporter: "otlp", url: "http://collector:4318/v1/traces" })
      expect(config.logs).toMatchObject({ exporter: "otlp", url: "http://logs:4318/custom" })
      expect(config.metrics.exporter).toBe("none")
      expect(Redacted.value(config.traces.headers)).toEqual({ authorization: "Bearer s3cret", "x-team": "jobs" })
      expect(String(config.traces.headers)).not.toContain("s3cret")
    }))

  it.effect("OTEL_SDK_DISABLED turns every signal off", () =>
    Effect.gen(function*() {
      const config = yield* fromEnv({ OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })
      expect([config.traces.exporter, config.metrics.exporter, config.logs.exporter]).toEqual(["none", "none", "none"])
    }))

  it.scoped("layerFromEnv with an empty environment builds, and jobs run untouched", () =>
    Effect.gen(function*() {
      const queue = freshQueue("plain")
      const Task = Job.make({ name: "task", queue, payload: Schema.Struct({}) })
      const worker = yield* start(Worker.layer({ handlers: [Task.handler(() => Effect.void)] }))
      const done = yield* finishedJobs(worker, 1)
      yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Task, {})))
      const [finished] = yield* done
      expect(Exit.isSuccess(finished!.exit)).toBe(true)
    }).pipe(
      Effect.provide(Layer.merge(Testing.layer, Telemetry.layerFromEnv({ serviceName: "plain" }))),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
    ))
})
