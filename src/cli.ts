/**
 * The `conveyor` command line (`conveyor/cli`), and the shape of a worker module it runs.
 *
 * ```ts
 * // worker.ts: run it with `npx conveyor worker worker.ts`
 * export default Cli.defineWorker({
 *   handlers: [SendEmailHandler, ResizeImageHandler],
 *   layer: MailerLive,                 // what the handlers need, for the life of the process
 *   jobLayer: WorkspaceSettings.layer  // built fresh for every job
 * })
 * ```
 */
import type { Layer } from "effect"
import type { AnyCronSchedule } from "./CronSchedule.js"
import type { JobHandler } from "./Job.js"
import type { WorkerOptions } from "./WorkerConfig.js"
import type { ScheduleDescription } from "./internal/operations.js"

export type { ScheduleDescription }

/** What `conveyor worker <module>` imports: the module's default export. */
export interface WorkerModule {
  readonly handlers: ReadonlyArray<JobHandler<any>>
  /**
   * Process-scoped services the handlers need. It may itself use the store's services
   * (`JobStore`, `JobClient`, `SqlClient`), which the CLI provides.
   */
  readonly layer?: Layer.Layer<any, any, any>
  /** Services built fresh inside each job's scope (see `Worker.layer`). */
  readonly jobLayer?: Layer.Layer<any, any, any>
  /** Worker settings; the environment (`CONVEYOR_*`) and command-line flags override them. */
  readonly worker?: Omit<WorkerOptions, "workerId">
  /** Cron schedules the worker runs (each tick once across all workers); `cron list` and the dashboard show them. */
  readonly schedules?: ReadonlyArray<AnyCronSchedule>
}

/** Declares a worker module; the identity, for type checking. */
export const defineWorker = <const M extends WorkerModule>(module: M): M => module

export { cli, run } from "./cli/commands.js"
