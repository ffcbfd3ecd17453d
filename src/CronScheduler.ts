/**
 * The cron scheduler: runs the declared schedules in this process, next to the worker.
 *
 * ```ts
 * const MainLive = Layer.mergeAll(
 *   Worker.layer({ handlers: [NightlyDigestHandler] }),
 *   CronScheduler.layer({ schedules: [NightlyDigestSchedule] })
 * ).pipe(Layer.provide(StoreLive))
 * ```
 *
 * Every worker process may run the same schedules: the store enqueues each tick once. Only the
 * schedules given here fire; one removed from code stops firing (its last tick stays stored,
 * for a later return). A bad schedule fails the layer with `InvalidSchedule`.
 */
import { Context, Effect, Layer } from "effect"
import type { AnyCronSchedule } from "./CronSchedule.js"
import type { InvalidSchedule, StoreError } from "./Errors.js"
import { JobStore } from "./JobStore.js"
import { parseSchedules, runSchedule, type ScheduleStatus, scheduleStatuses } from "./internal/cron.js"

export type { ScheduleStatus }

export interface CronSchedulerShape {
  /** The schedules this process runs, with their last and next ticks. */
  readonly list: Effect.Effect<ReadonlyArray<ScheduleStatus>, StoreError>
}

export class CronScheduler extends Context.Tag("conveyor/CronScheduler")<CronScheduler, CronSchedulerShape>() {}

export interface CronSchedulerOptions {
  readonly schedules: ReadonlyArray<AnyCronSchedule>
}

export const make = (options: CronSchedulerOptions) =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const schedules = yield* parseSchedules(options.schedules)
    yield* Effect.forEach(schedules, (parsed) => Effect.forkScoped(runSchedule(store, parsed)), { discard: true })
    yield* Effect.logInfo("cron scheduler started").pipe(
      Effect.annotateLogs({ module: "CronScheduler", schedules: schedules.map((s) => s.schedule.name).join(",") })
    )
    return { list: scheduleStatuses(store, schedules) } satisfies CronSchedulerShape
  })

/** Run the schedules for as long as the layer lives. */
export const layer = (options: CronSchedulerOptions): Layer.Layer<CronScheduler, InvalidSchedule, JobStore> =>
  Layer.scoped(CronScheduler, make(options))

/** The schedules of the `CronScheduler` in context, with their last and next ticks. */
export const list: Effect.Effect<ReadonlyArray<ScheduleStatus>, StoreError, CronScheduler> = Effect.flatMap(
  CronScheduler,
  (scheduler) => scheduler.list
)
