/**
 * The example worker: `npm start`. One root runtime holds the process-scoped layers (the store:
 * a SQLite file by default, PostgreSQL when `DATABASE_URL` is set); the worker
 * runs every job in its own scope with the job-scoped layers; a small producer enqueues work so
 * there is something to watch. Stop it with Ctrl-C or SIGTERM: in-flight jobs are drained.
 *
 * Telemetry comes from the environment (docs/telemetry.md): set OTEL_EXPORTER_OTLP_ENDPOINT to
 * send traces, metrics and logs to a collector; scrape http://localhost:9464/metrics.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Schedule } from "effect"
import { JobClient, Telemetry, Worker } from "conveyor"
import * as Database from "conveyor/database"
import { ProcessLive, WorkspaceSettings } from "./infrastructure.js"
import { BuildReport, handlers, ResizeImage, SendWelcomeEmail } from "./jobs.js"

/** The SQLite file `conveyor.db` by default; PostgreSQL when `DATABASE_URL` is set. */
const StoreLive = Database.layer

const WorkerLive = Worker.layer({ handlers, jobLayer: WorkspaceSettings.layer, concurrency: 4 })

/** Enqueues a little of everything every few seconds. */
const ProducerLive = Layer.scopedDiscard(
  Effect.gen(function*() {
    const client = yield* JobClient
    let n = 0
    const produce = Effect.gen(function*() {
      n++
      const workspace = `ws-${n % 3}`
      yield* client.enqueue(SendWelcomeEmail, { to: `user${n}@example.com`, name: `User ${n}` }, { tenantId: workspace })
      yield* client.enqueue(ResizeImage, { url: `https://example.com/${n}.png`, bytes: n % 4 === 0 ? 20_000_000 : 50_000 }, {
        tenantId: workspace
      })
      yield* client.enqueue(BuildReport, { month: "2026-11" })
    }).pipe(Effect.withSpan("produce")) // stands in for the request that enqueues in a real app
    yield* produce.pipe(
      Effect.catchAllCause(Effect.logWarning),
      Effect.repeat(Schedule.spaced("3 seconds")),
      Effect.annotateLogs({ module: "Producer" }),
      Effect.forkScoped
    )
  })
)

/** Traces, metrics and logs: exported only when OTEL_* variables ask for it; logs always. */
const TelemetryLive = Telemetry.layerFromEnv({ serviceName: "conveyor-example-worker" })

const MainLive = Layer.mergeAll(
  WorkerLive,
  ProducerLive,
  Telemetry.layerQueueDepth("5 seconds"),
  Telemetry.layerMetricsServerConfig
).pipe(
  Layer.provide(ProcessLive),
  Layer.provide(StoreLive),
  Layer.provide(TelemetryLive)
)

Layer.launch(MainLive).pipe(NodeRuntime.runMain)
