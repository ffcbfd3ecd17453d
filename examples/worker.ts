/**
 * The worker process: `npm run worker`. Runs the app's jobs; start as many as you like on
 * PostgreSQL (`DATABASE_URL`). Ctrl-C or SIGTERM drains in-flight jobs, then exits.
 *
 * Metrics as Prometheus text on `CONVEYOR_METRICS_PORT` (default 9464), the admin API and the
 * dashboard on `CONVEYOR_ADMIN_PORT` (default 9400): give each worker on one machine ports of
 * its own.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { Telemetry } from "conveyor"
import { AdminLive, WorkerLive, workerServiceName } from "./app.js"
import { ProcessLive, TelemetryLive } from "./infrastructure.js"

// The admin server reports this worker in its readiness probe: it is built over the worker.
const MainLive = Layer.mergeAll(AdminLive.pipe(Layer.provideMerge(WorkerLive)), Telemetry.layerMetricsServerConfig).pipe(
  Layer.provide(ProcessLive),
  Layer.provide(TelemetryLive(workerServiceName))
)

Layer.launch(MainLive).pipe(NodeRuntime.runMain({ disablePrettyLogger: true }))
