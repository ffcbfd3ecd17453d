/**
 * Storage spans, applied once at the store boundary instead of in each driver: every store
 * layer wraps its `JobStoreShape` with `tracedStore`.
 *
 * Calls a worker makes in a loop whether or not there is work (claim, rescue, a cron tick
 * another worker took, a prune that found nothing) are traced only when they did something or
 * failed: they run with tracing off (so driver spans such as `sql.execute` stay quiet too) and
 * their span is recorded afterwards, with the call's real start time. An idle worker emits no
 * spans at all.
 */
import { Clock, Context, Effect, Exit, FiberRef, Option } from "effect"
import type { JobStoreShape } from "../JobStore.js"
import { builtInTracer } from "./tracing.js"

export interface TracedStoreOptions {
  /** `db.system.name` of the database behind the store (`"sqlite"`, `"postgresql"`). */
  readonly system?: string
}

const spanName = (operation: string) => `JobStore.${operation}`

export const tracedStore = (store: JobStoreShape, options: TracedStoreOptions = {}): JobStoreShape => {
  const base: Record<string, unknown> = options.system === undefined ? {} : { "db.system.name": options.system }
  const attributesOf = (operation: string, extra?: Record<string, unknown>) => ({
    ...base,
    "db.operation.name": operation,
    ...extra
  })

  /**
   * With Effect's built-in tracer, spans are kept in memory and seen by no one: store calls then
   * run with tracing off, which also spares the SQL client's own spans.
   */
  const unlessBuiltIn = <A, E>(effect: Effect.Effect<A, E>, traceIt: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.tracerWith((tracer) => tracer === builtInTracer ? Effect.withTracerEnabled(effect, false) : traceIt)

  const traced = (operation: string, extra?: Record<string, unknown>) => <A, E>(effect: Effect.Effect<A, E>) =>
    unlessBuiltIn(
      effect,
      // Built only when a real tracer asks for it: a single enqueue goes through here.
      Effect.suspend(() =>
        Effect.withSpan(effect, spanName(operation), {
          kind: "client",
          attributes: attributesOf(operation, extra),
          captureStackTrace: false
        })
      )
    )

  /** Trace `effect` only if it failed or `isIdle` says its result was not a no-op. */
  const tracedUnlessIdle = <A, E>(
    operation: string,
    effect: Effect.Effect<A, E>,
    isIdle: (result: A) => boolean,
    resultAttributes?: (result: A) => Record<string, unknown>
  ): Effect.Effect<A, E> =>
    unlessBuiltIn(effect, Effect.gen(function*() {
      if (!(yield* FiberRef.get(FiberRef.currentTracerEnabled))) return yield* effect
      const parent = yield* Effect.option(Effect.currentParentSpan)
      const startTime = yield* Clock.currentTimeNanos
      const exit = yield* Effect.exit(Effect.withTracerEnabled(effect, false))
      if (Exit.isSuccess(exit) && isIdle(exit.value)) return yield* exit
      const endTime = yield* Clock.currentTimeNanos
      const tracer = yield* Effect.tracer
      const span = tracer.span(spanName(operation), parent, Context.empty(), [], startTime, "client", {
        captureStackTrace: false
      })
      const attributes = attributesOf(
        operation,
        Exit.isSuccess(exit) && resultAttributes !== undefined ? resultAttributes(exit.value) : undefined
      )
      for (const [key, value] of Object.entries(attributes)) span.attribute(key, value)
      span.end(endTime, exit)
      return yield* exit
    }))

  return {
    insert: (jobs) => traced("insert", { "db.operation.batch.size": jobs.length })(store.insert(jobs)),
    claim: (request) =>
      tracedUnlessIdle("claim", store.claim(request), ({ jobs }) => jobs.length === 0, ({ jobs }) => ({
        "conveyor.store.jobs": jobs.length
      })),
    settle: (settlements) =>
      traced("settle", { "db.operation.batch.size": settlements.length })(store.settle(settlements)),
    heartbeat: (leases, leaseDuration) =>
      traced("heartbeat", { "db.operation.batch.size": leases.length })(store.heartbeat(leases, leaseDuration)),
    rescue: tracedUnlessIdle(
      "rescue",
      store.rescue,
      ({ discarded, retried }) => retried.length + discarded.length === 0,
      ({ discarded, retried }) => ({ "conveyor.store.jobs": retried.length + discarded.length })
    ),
    get: (id) => traced("get")(store.get(id)),
    list: (filter) => traced("list")(store.list(filter)),
    counts: traced("counts")(store.counts),
    finishedCounts: (request) => traced("finishedCounts")(store.finishedCounts(request)),
    cancel: (id) => traced("cancel")(store.cancel(id)),
    retry: (id) => traced("retry")(store.retry(id)),
    prune: (request) =>
      tracedUnlessIdle("prune", store.prune(request), (deleted) => deleted === 0, (deleted) => ({
        "conveyor.store.jobs": deleted
      })),
    setQueuePaused: (queue, paused) => traced("setQueuePaused")(store.setQueuePaused(queue, paused)),
    pausedQueues: traced("pausedQueues")(store.pausedQueues),
    enqueueCronTick: (tick) => tracedUnlessIdle("enqueueCronTick", store.enqueueCronTick(tick), Option.isNone),
    cronLastTicks: traced("cronLastTicks")(store.cronLastTicks),
    // Long-lived subscriptions: a span would stay open for the life of the worker.
    subscribeWakeups: store.subscribeWakeups,
    subscribeCancellations: store.subscribeCancellations,
    registerLocalWorker: store.registerLocalWorker
  }
}
