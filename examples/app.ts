/**
 * The app's two processes as layers, over the same infrastructure (examples/infrastructure.ts):
 * the API serves requests, the worker runs jobs. The entry points (examples/api.ts,
 * examples/worker.ts, examples/start.ts) add the HTTP server, telemetry and the runtime; the
 * tests build the same layers on SQLite and PostgreSQL.
 */
import { Effect, Layer } from "effect"
import { CronScheduler, Telemetry, Worker, WorkerConfig } from "conveyor"
import { AdminServer } from "conveyor/admin"
import { HttpApiLive } from "./httpApi.js"
import { JobScopedLive } from "./infrastructure.js"
import { handlers, nightlyDigests } from "./jobs.js"

/** The API's service name in logs, traces and metrics. */
export const apiServiceName = "conveyor-example-api"
/** The worker's: a different name, the same wiring. */
export const workerServiceName = "conveyor-example-worker"

/** The HTTP API; needs an `HttpServer` and the process-scoped layers. */
export const ApiLive = HttpApiLive

// #region worker
/**
 * The worker: every handler, the job-scoped layers built fresh for each job, settings from the
 * environment (`CONVEYOR_CONCURRENCY`, `CONVEYOR_SHUTDOWN_GRACE`, ...), and the nightly digest
 * schedule. Every worker runs the schedule; each tick becomes one job.
 */
export const WorkerLive = Layer.mergeAll(
  Worker.layer({ handlers, jobLayer: JobScopedLive }),
  Layer.unwrapEffect(Effect.map(nightlyDigests, (schedule) => CronScheduler.layer({ schedules: [schedule] }))),
  Telemetry.layerQueueDepth("5 seconds")
).pipe(Layer.provide(WorkerConfig.layerConfig))
// #endregion worker

/**
 * The admin API and dashboard, served by the worker on `CONVEYOR_ADMIN_PORT` (default 9400;
 * loopback only unless `CONVEYOR_ADMIN_TOKEN` is set): the app's jobs may be enqueued from it,
 * and its schedule is shown with its next run.
 */
export const AdminLive = Layer.unwrapEffect(Effect.map(nightlyDigests, (schedule) =>
  AdminServer.layerConfig({ jobs: handlers.map((handler) => handler.job), schedules: [schedule] })))

