/**
 * The example's worker as a module for the CLI:
 *
 *   npx conveyor worker examples/worker-module.ts --admin-port 9400
 *
 * The CLI provides the store (DATABASE_URL, else the SQLite file) and its `SqlClient`, over
 * which the app's own services run; it reads worker settings from the environment
 * (CONVEYOR_CONCURRENCY, ...) and drains in-flight jobs on Ctrl-C or SIGTERM.
 */
import { defineWorker } from "conveyor/cli"
import { AppServicesLive, JobScopedLive } from "./infrastructure.js"
import { handlers, nightlyDigestsAt } from "./jobs.js"

export default defineWorker({
  handlers,
  layer: AppServicesLive,
  jobLayer: JobScopedLive,
  schedules: [nightlyDigestsAt("0 6 * * *")]
})
