/**
 * The example's jobs as a worker module for the CLI:
 *
 *   npx conveyor worker examples/worker-module.ts --admin-port 9400
 *
 * The CLI provides the store (DATABASE_URL, else the SQLite file), reads worker settings from
 * the environment (CONVEYOR_CONCURRENCY, ...), and drains in-flight jobs on Ctrl-C or SIGTERM.
 */
import { defineWorker } from "conveyor/cli"
import { ProcessLive, WorkspaceSettings } from "./infrastructure.js"
import { handlers } from "./jobs.js"

export default defineWorker({
  handlers,
  layer: ProcessLive,
  jobLayer: WorkspaceSettings.layer,
  worker: { concurrency: 4 }
})
