/**
 * The worker process: `npm run worker`. Runs the app's jobs; start as many as you like on
 * PostgreSQL (`DATABASE_URL`). Ctrl-C or SIGTERM drains in-flight jobs, then exits.
 *
 * Metrics as Prometheus text on `CONVEYOR_METRICS_PORT` (default 9464); give each worker on one
 * machine a port of its own.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { Telemetry } from "conveyor"
import { WorkerLive, workerServiceName } from "./app.js"
import { ProcessLive, TelemetryLive } from "./infrastructure.js"

const MainLive = Layer.mergeAll(WorkerLive, Telemetry.layerMetricsServerConfig).pipe(
  Layer.provide(ProcessLive),
  Layer.provide(TelemetryLive(workerServiceName))
)

Layer.launch(MainLive).pipe(NodeRuntime.runMain({ disablePrettyLogger: true }))
