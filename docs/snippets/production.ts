/**
 * docs/production.md: a worker process as it runs in production.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import { Job, Telemetry, Worker, WorkerConfig } from "conveyor"
import * as Database from "conveyor/database"

const ResizeImage = Job.make({ name: "resize_image", queue: "images", payload: Schema.Struct({ url: Schema.String }) })
const SendEmail = Job.make({ name: "send_email", queue: "mail", payload: Schema.Struct({ to: Schema.String }) })
const handlers = [
  ResizeImage.handler(({ url }) => Effect.logInfo(`resizing ${url}`)),
  SendEmail.handler(({ to }) => Effect.logInfo(`mailing ${to}`))
] as const

// #region worker
const WorkerLive = Worker.layer({
  handlers,
  concurrency: 32, // jobs at once in this process, across its queues
  queues: { images: 4, mail: 32 }, // CPU-heavy images: at most 4 at once here
  shutdownGrace: "25 seconds" // the default: under Kubernetes' 30 s before SIGKILL
}).pipe(
  // CONVEYOR_CONCURRENCY, CONVEYOR_SHUTDOWN_GRACE, ... from the environment: the options above
  // override what they name; the environment sets the rest.
  Layer.provide(WorkerConfig.layerConfig)
)

const MainLive = Layer.mergeAll(
  WorkerLive,
  Telemetry.layerQueueDepth("15 seconds"), // conveyor.queue.depth per queue and state
  Telemetry.layerMetricsServerConfig // GET /metrics on CONVEYOR_METRICS_PORT (9464)
).pipe(
  Layer.provide(Database.layer), // PostgreSQL from DATABASE_URL
  Layer.provide(Telemetry.layerFromEnv({ serviceName: "billing-worker" }))
)

// SIGTERM: stop claiming, let running jobs finish within the grace, release the rest, exit 0.
Layer.launch(MainLive).pipe(NodeRuntime.runMain({ disablePrettyLogger: true }))
// #endregion worker
