/**
 * The reference application (examples/) end to end, on SQLite and on PostgreSQL: its API over
 * real HTTP on 127.0.0.1, its worker, its fake webhook receiver, built from the same layers the
 * entry points launch. Only the configuration (a fresh database) and the telemetry exporters
 * (in memory) differ.
 */
import { createServer } from "node:http"
import { HttpApiClient, HttpServer } from "@effect/platform"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigProvider, Context, DateTime, Effect, Exit, Layer, Schedule } from "effect"
import { JobClient, JobStore, Telemetry, Worker } from "conveyor"
import { ApiLive, WorkerLive, workerServiceName } from "../examples/app.js"
import { FakeReceiver } from "../examples/fakeReceiver.js"
import { AppApi } from "../examples/httpApi.js"
import { ProcessLive } from "../examples/infrastructure.js"
import { freshSchema, freshSqliteFile, pgUrl, removeSqliteFile } from "./databases.js"
import { finishedJobsById } from "./helpers.js"

/** Every log line written while the layer lives, parsed (the app logs JSON here). */
class LogLines extends Context.Tag("test/LogLines")<LogLines, Array<Record<string, unknown>>>() {
  static readonly layer = Layer.scoped(
    LogLines,
    Effect.acquireRelease(
      Effect.sync(() => {
        const lines: Array<Record<string, unknown>> = []
        const original = console.log
        console.log = (line: unknown) => {
          try {
            lines.push(JSON.parse(String(line)) as Record<string, unknown>)
          } catch {
            lines.push({ message: String(line) })
          }
        }
        return { lines, original }
      }),
      ({ original }) => Effect.sync(() => void (console.log = original))
    ).pipe(Effect.map(({ lines }) => lines))
  )
}

class Spans extends Context.Tag("test/Spans")<Spans, InMemorySpanExporter>() {}

/** Exporters stop with their provider: a new one per app. */
const TelemetryTest = Layer.unwrapEffect(Effect.sync(() => {
  const spans = new InMemorySpanExporter()
  return Layer.merge(
    Layer.succeed(Spans, spans),
    Telemetry.layer({ serviceName: workerServiceName, format: "json", spanProcessors: [new SimpleSpanProcessor(spans)] })
  )
}))

const appTables = ["workspaces", "endpoints", "events", "deliveries"]

const databases = [
  {
    name: "sqlite",
    config: () => {
      const file = freshSqliteFile("example")
      return {
        settings: { CONVEYOR_SQLITE_FILE: file, APP_TABLE_PREFIX: "app_" },
        cleanUp: Effect.sync(() => removeSqliteFile(file))
      }
    }
  },
  {
    name: "postgresql",
    config: () => {
      const schema = freshSchema("example")
      const prefix = `${schema}_`
      return {
        settings: { DATABASE_URL: pgUrl, CONVEYOR_PG_SCHEMA: schema, APP_TABLE_PREFIX: prefix },
        cleanUp: Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql.unsafe(
            `DROP SCHEMA IF EXISTS "${schema}" CASCADE; ` +
              appTables.map((table) => `DROP TABLE IF EXISTS "${prefix}${table}"`).join("; ")
          )).pipe(Effect.ignore)
      }
    }
  }
] as const

/** The API on a free port and the worker, over the app's own infrastructure on a fresh database. */
const appLayer = (database: (typeof databases)[number], extra: Record<string, string> = {}) =>
  Layer.unwrapEffect(Effect.sync(() => {
    const { cleanUp, settings } = database.config()
    const config = ConfigProvider.fromMap(
      new Map(Object.entries({ ...settings, CONVEYOR_POLL_INTERVAL: "200 millis", ...extra }))
    )
    const CleanUpLive = Layer.scopedDiscard(Effect.addFinalizer(() => cleanUp))
    return Layer.mergeAll(
      ApiLive.pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))),
      WorkerLive
    ).pipe(
      Layer.provideMerge(Layer.mergeAll(ProcessLive, FakeReceiver.layer(0))),
      Layer.provideMerge(CleanUpLive.pipe(Layer.provideMerge(ProcessLive))),
      Layer.provideMerge(Layer.mergeAll(TelemetryTest, LogLines.layer, NodeHttpClient.layerUndici)),
      Layer.provide(Layer.setConfigProvider(config))
    )
  }))

/** A typed client for the app's API, on the port the test server got. */
const apiClient = Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  const address = server.address
  if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("the API is not on TCP")
  return yield* HttpApiClient.make(AppApi, { baseUrl: `http://127.0.0.1:${address.port}` })
})

for (const database of databases) {
  layer(appLayer(database), { excludeTestServices: true, timeout: 60_000 })(`example app on ${database.name}`, (it) => {
    it.scoped("a published event becomes a delivered webhook; the job's logs and spans carry the workspace id", () =>
      Effect.gen(function*() {
        const api = yield* apiClient
        const receiver = yield* FakeReceiver
        const worker = yield* Worker.Worker
        const workspace = yield* api.workspaces.create({ payload: { name: "acme" } })
        yield* api.workspaces.addEndpoint({ path: { workspaceId: workspace.id }, payload: { url: `${receiver.url}/hooks/acme` } })

        const finishing = yield* finishedJobsById(worker)
        const event = yield* api.workspaces.publishEvent({
          path: { workspaceId: workspace.id },
          payload: { type: "invoice.paid", data: { amount: 42 } }
        })
        expect(event.deliveries).toHaveLength(1)
        const jobId = event.deliveries[0]!.jobId
        const [finished] = yield* finishing([jobId])
        expect(finished).toMatchObject({ job: { id: jobId }, outcome: "Complete" })

        const seen = yield* api.workspaces.getEvent({ path: { workspaceId: workspace.id, eventId: event.id } })
        expect(seen.deliveries.map((d) => d.state)).toEqual(["completed"])
        const received = (yield* receiver.received).filter((r) => r.hook === "acme")
        expect(received).toHaveLength(1)
        expect(received[0]).toMatchObject({ workspaceId: workspace.id, body: { id: event.id, type: "invoice.paid" } })

        const spans = (yield* Spans).getFinishedSpans()
        const process = spans.find((span) => span.name === "process webhooks" && span.attributes["messaging.message.id"] === jobId)
        expect(process?.attributes["conveyor.job.tenant_id"]).toBe(workspace.id)
        const post = spans.find((span) => span.name === "webhook.post" && span.attributes["workspace.id"] === workspace.id)
        expect(post?.parentSpanContext?.spanId).toBe(process?.spanContext().spanId)

        const jobLines = (yield* LogLines).filter((line) => line.jobId === jobId)
        expect(jobLines.map((line) => line.message)).toEqual(expect.arrayContaining([
          "workspace client opened",
          `delivered invoice.paid to ${receiver.url}/hooks/acme`
        ]))
        expect(jobLines.every((line) => line.tenantId === workspace.id && line.service === workerServiceName)).toBe(true)
      }))

    it.scoped("a request that fails after enqueueing leaves no event and no job", () =>
      Effect.gen(function*() {
        const api = yield* apiClient
        const receiver = yield* FakeReceiver
        const store = yield* JobStore
        const workspace = yield* api.workspaces.create({ payload: { name: "small", eventLimit: 1 } })
        const path = { workspaceId: workspace.id }
        yield* api.workspaces.addEndpoint({ path, payload: { url: `${receiver.url}/hooks/small` } })
        const jobsOfWorkspace = Effect.map(
          store.list({ name: "deliver_webhook", limit: 10_000 }),
          (jobs) => jobs.filter((job) => job.tenantId === workspace.id)
        )

        const first = yield* api.workspaces.publishEvent({ path, payload: { type: "first" } })
        const second = yield* Effect.exit(api.workspaces.publishEvent({ path, payload: { type: "second" } }))
        expect(second).toMatchObject(Exit.fail({ _tag: "EventLimitReached", limit: 1 }))
        // The second request enqueued a job, then failed: its transaction took the job with it.
        const jobs = yield* jobsOfWorkspace
        expect(jobs.map((job) => job.id)).toEqual([first.deliveries[0]!.jobId])
        expect(jobs.map((job) => JSON.parse(job.payload).eventId)).toEqual([first.id])
      }))

    it.scoped("each job gets its own workspace client and flags, built and released once per job", () =>
      Effect.gen(function*() {
        const api = yield* apiClient
        const receiver = yield* FakeReceiver
        const worker = yield* Worker.Worker
        const jobs = yield* JobClient
        const signed = yield* api.workspaces.create({ payload: { name: "signed" } })
        const plain = yield* api.workspaces.create({ payload: { name: "plain" } })
        yield* api.workspaces.setFlags({ path: { workspaceId: signed.id }, payload: { signDeliveries: true, skipEmptyDigests: true } })
        for (const workspace of [signed, plain]) {
          for (const hook of ["one", "two"]) {
            yield* api.workspaces.addEndpoint({
              path: { workspaceId: workspace.id },
              payload: { url: `${receiver.url}/hooks/${workspace.name}-${hook}` }
            })
          }
        }
        const finishing = yield* finishedJobsById(worker)
        const events = yield* Effect.forEach([signed, plain], (workspace) =>
          api.workspaces.publishEvent({ path: { workspaceId: workspace.id }, payload: { type: "ping" } }))
        const jobIds = events.flatMap((event) => event.deliveries.map((d) => d.jobId))
        expect(jobIds).toHaveLength(4)
        yield* finishing(jobIds)
        expect(yield* Effect.forEach(jobIds, (id) => Effect.map(jobs.get(id), (job) => job.state))).toEqual(
          ["completed", "completed", "completed", "completed"]
        )

        const lines = yield* LogLines
        for (const jobId of jobIds) {
          const messages = lines.filter((line) => line.jobId === jobId).map((line) => String(line.message))
          expect(messages.filter((m) => m === "workspace client opened")).toHaveLength(1)
          expect(messages.filter((m) => m.startsWith("workspace client closed"))).toEqual(["workspace client closed after 1 call(s)"])
        }
        // Released clients wrote their counts; the flags were the job's own workspace's.
        expect((yield* api.workspaces.get({ path: { workspaceId: signed.id } })).deliveriesSent).toBe(2)
        expect((yield* api.workspaces.get({ path: { workspaceId: plain.id } })).deliveriesSent).toBe(2)
        const received = yield* receiver.received
        const of = (workspaceId: string) => received.filter((r) => r.workspaceId === workspaceId)
        expect(of(signed.id).map((r) => r.signature?.startsWith("sha256="))).toEqual([true, true])
        expect(of(plain.id).map((r) => r.signature)).toEqual([undefined, undefined])
      }))

    it.scoped("an endpoint that answers 410 Gone cancels its job and is disabled", () =>
      Effect.gen(function*() {
        const api = yield* apiClient
        const receiver = yield* FakeReceiver
        const worker = yield* Worker.Worker
        const workspace = yield* api.workspaces.create({ payload: { name: "moved" } })
        const path = { workspaceId: workspace.id }
        yield* api.workspaces.addEndpoint({ path, payload: { url: `${receiver.url}/hooks/gone-${workspace.id}` } })
        const finishing = yield* finishedJobsById(worker)
        const event = yield* api.workspaces.publishEvent({ path, payload: { type: "ping" } })
        const [finished] = yield* finishing([event.deliveries[0]!.jobId])
        expect(finished).toMatchObject({ job: { id: event.deliveries[0]!.jobId }, outcome: "Cancel" })
        const next = yield* api.workspaces.publishEvent({ path, payload: { type: "ping" } })
        expect(next.deliveries).toEqual([])
      }))
  })
}

for (const database of databases) {
  // The nightly schedule every second, so the test sees a tick at once.
  layer(appLayer(database, { DIGEST_CRON: "* * * * * *" }), { excludeTestServices: true, timeout: 60_000 })(
    `example app's digest schedule on ${database.name}`,
    (it) => {
      it.scoped("a cron tick plans one digest per workspace, each sent with its workspace's client and flags", () =>
        Effect.gen(function*() {
          const api = yield* apiClient
          const receiver = yield* FakeReceiver
          const store = yield* JobStore
          const workspace = yield* api.workspaces.create({ payload: { name: "nightly" } })
          const path = { workspaceId: workspace.id }
          yield* api.workspaces.addEndpoint({ path, payload: { url: `${receiver.url}/hooks/nightly` } })
          // Yesterday had no events: only a workspace that wants empty digests gets one.
          yield* api.workspaces.setFlags({ path, payload: { signDeliveries: false, skipEmptyDigests: false } })

          const digests = receiver.received.pipe(
            Effect.map((all) => all.filter((r) => r.hook === "nightly")),
            Effect.filterOrFail((found) => found.length > 0, () => "not yet"),
            Effect.retry(Schedule.spaced("100 millis")),
            Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("no digest arrived") })
          )
          const [digest] = yield* digests
          const yesterday = DateTime.formatIsoDate(DateTime.subtract(yield* DateTime.now, { days: 1 }))
          expect(digest).toMatchObject({ workspaceId: workspace.id, body: { type: "digest", events: 0 } })
          // The tick may have come just after midnight: then "yesterday" is the day before.
          expect([yesterday, DateTime.formatIsoDate(DateTime.subtract(yield* DateTime.now, { days: 2 }))]).toContain(
            (digest!.body as { day: string }).day
          )

          const plans = yield* store.list({ name: "plan_digests", limit: 100 })
          expect(plans.length).toBeGreaterThan(0)
          expect(plans.every((job) => job.trigger === "cron" && job.tenantId === null)).toBe(true)
          const sent = (yield* store.list({ name: "send_digest", limit: 100 })).filter((job) => job.tenantId === workspace.id)
          expect(sent.map((job) => JSON.parse(job.payload).workspaceId)).toContain(workspace.id)
        }))
    }
  )
}
