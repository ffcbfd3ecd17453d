/**
 * The worker: runs jobs from the store with bounded concurrency, leases and heartbeats, retries,
 * and a graceful shutdown that drains in-flight jobs.
 *
 * ```ts
 * const WorkerLive = Worker.layer({
 *   handlers: [SendEmailHandler, ResizeImageHandler],
 *   jobLayer: WorkspaceClient.layer          // built fresh for every job
 * }).pipe(Layer.provide(AppLive), Layer.provide(SqliteStore.layer))
 *
 * Layer.launch(WorkerLive).pipe(NodeRuntime.runMain)
 * ```
 */
import { Context, Effect, Layer, PubSub, type Queue, type Scope } from "effect"
import type { HandlerContext, JobHandler } from "./Job.js"
import type { JobContext } from "./JobContext.js"
import type { JobStore } from "./JobStore.js"
import type { WorkerOptions } from "./WorkerConfig.js"
import { makeWorker, WorkerEvent } from "./internal/worker.js"

export { WorkerEvent }

export interface WorkerShape {
  readonly id: string
  readonly events: PubSub.PubSub<WorkerEvent>
  /** Jobs this worker holds now, running or buffered. */
  readonly held: Effect.Effect<number>
}

export class Worker extends Context.Tag("conveyor/Worker")<Worker, WorkerShape>() {}

export interface WorkerLayerOptions<Handlers extends ReadonlyArray<JobHandler<any>>, JobOut, JobErr, JobIn>
  extends WorkerOptions
{
  readonly handlers: Handlers
  /**
   * Layers built fresh inside each job's scope and released with it. They may use `JobContext`
   * and any process-scoped service; handlers use what they provide without knowing it is per job.
   */
  readonly jobLayer?: Layer.Layer<JobOut, JobErr, JobIn>
}

/**
 * The worker as a layer. Its requirements are the store plus whatever the handlers and the job
 * layer need that the job layer does not itself provide: a service nobody provides is a
 * compile error where the layer is launched.
 */
export const layer = <
  const Handlers extends ReadonlyArray<JobHandler<any>>,
  JobOut = never,
  JobErr = never,
  JobIn = never
>(
  options: WorkerLayerOptions<Handlers, JobOut, JobErr, JobIn>
): Layer.Layer<
  Worker,
  never,
  | JobStore
  | Exclude<HandlerContext<Handlers[number]>, JobOut | JobContext | Scope.Scope>
  | Exclude<JobIn, JobContext>
> => {
  const { handlers, jobLayer, ...settings } = options
  return Layer.scoped(
    Worker,
    makeWorker(handlers, (jobLayer ?? Layer.empty) as Layer.Layer<unknown, unknown, unknown>, settings)
  ) as Layer.Layer<Worker, never, any>
}

/** Subscribe to the worker's events for the rest of the scope. */
export const events: Effect.Effect<Queue.Dequeue<WorkerEvent>, never, Worker | Scope.Scope> = Effect.flatMap(
  Worker,
  (worker) => PubSub.subscribe(worker.events)
)
