/**
 * The worker loop. One fetcher claims jobs in batches into per-queue buffers; one dispatcher per
 * queue starts them under the queue's and the process's concurrency limits, each in a fiber of
 * its own; one heartbeat fiber extends every held lease in a single store call; a rescuer
 * returns jobs whose workers died. Shutdown stops claiming, releases buffered jobs, lets running
 * ones finish within the grace period, then interrupts and releases the rest.
 */
import * as Os from "node:os"
import {
  Clock,
  Data,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberSet,
  Layer,
  PubSub,
  Queue,
  Random,
  Schedule,
  Stream
} from "effect"
import type { JobHandler } from "../Job.js"
import { JobContext } from "../JobContext.js"
import { type JobRecord, JobStore, Settlement } from "../JobStore.js"
import * as WorkerConfig from "../WorkerConfig.js"
import { runAttempt, settlementFor, type StopReason } from "./attempt.js"
import * as Metrics from "./metrics.js"
import { validateName } from "./names.js"
import { makeSettler } from "./settler.js"
import { endProcessSpan, makeProcessSpan, outcomeOf } from "./tracing.js"

/** What happened to a job on this worker, for tests, telemetry and tools. */
export type WorkerEvent = Data.TaggedEnum<{
  JobStarted: { readonly job: JobRecord }
  JobFinished: {
    readonly job: JobRecord
    /** The settlement written, or "Lost" when the lease was lost and nothing was written. */
    readonly outcome: Settlement["_tag"] | "Lost"
    /** Whether the store accepted the settlement (false: the lease was stale). */
    readonly applied: boolean
    readonly exit: Exit.Exit<unknown, unknown>
  }
}>
export const WorkerEvent = Data.taggedEnum<WorkerEvent>()

interface Held {
  readonly record: JobRecord
  fiber: Fiber.RuntimeFiber<void> | undefined
  stop: StopReason | undefined
}

export const makeWorker = (
  handlers: ReadonlyArray<JobHandler<unknown>>,
  jobLayer: Layer.Layer<unknown, unknown, unknown>,
  overrides: WorkerConfig.WorkerOptions
) =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const settings = WorkerConfig.merge(yield* WorkerConfig.WorkerConfig, overrides)
    const workerId = settings.workerId ??
      `${Os.hostname()}-${process.pid}-${(yield* Random.nextIntBetween(0, 36 ** 4)).toString(36)}`

    const byName = new Map<string, JobHandler<unknown>>()
    for (const handler of handlers) {
      if (byName.has(handler.job.name)) return yield* Effect.dieMessage(`two handlers for job "${handler.job.name}"`)
      byName.set(handler.job.name, handler)
    }
    const { concurrency } = settings
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      return yield* Effect.dieMessage(`concurrency must be a positive integer, got ${concurrency}`)
    }
    const queueLimits = new Map<string, number>(
      settings.queues === undefined
        ? handlers.map((handler) => [handler.job.queue, concurrency])
        : Object.entries(settings.queues).map(([queue, limit]) => [queue, Math.min(limit, concurrency)])
    )
    yield* Effect.forEach(queueLimits.keys(), (queue) => validateName("queue", queue), { discard: true }).pipe(Effect.orDie)
    const prefetch = settings.prefetch ?? concurrency
    const capacity = concurrency + prefetch
    const queueCapacity = (limit: number) => limit + prefetch

    // The worker's own log lines; a job's lines carry the job's annotations instead.
    const workerLogs = { module: "Worker", workerId }
    const events = yield* PubSub.unbounded<WorkerEvent>()
    const settler = yield* makeSettler(store)
    const running = yield* FiberSet.make<void>()
    const held = new Map<string, Held>()
    const heldByQueue = new Map<string, number>()
    const slotFreed = yield* Queue.sliding<void>(1)
    const workAvailable = yield* Queue.sliding<void>(1)
    const processPermits = yield* Effect.makeSemaphore(concurrency)
    const lanes = new Map(
      yield* Effect.forEach(queueLimits, ([queue, limit]) =>
        Effect.map(
          Effect.all({ buffer: Queue.unbounded<JobRecord>(), permits: Effect.makeSemaphore(limit) }),
          (lane) => [queue, lane] as const
        ))
    )

    let runningCount = 0
    const hold = (record: JobRecord) => {
      held.set(record.id, { record, fiber: undefined, stop: undefined })
      heldByQueue.set(record.queue, (heldByQueue.get(record.queue) ?? 0) + 1)
    }
    const unhold = (record: JobRecord) => {
      if (!held.delete(record.id)) return
      heldByQueue.set(record.queue, (heldByQueue.get(record.queue) ?? 1) - 1)
      Queue.unsafeOffer(slotFreed, undefined)
    }
    const leaseOf = (record: JobRecord) => ({ id: record.id, token: record.leaseToken })
    const submit = (settlement: Settlement) =>
      settler.submit(settlement).pipe(
        Effect.catchAllCause((cause) =>
          Effect.as(Effect.logWarning("could not settle job; its lease will expire and it will be rescued", cause), false)
        )
      )

    // --- running one job -------------------------------------------------------------------
    const jobLogAnnotations = (record: JobRecord) => ({
      jobId: record.id,
      jobName: record.name,
      queue: record.queue,
      attempt: record.attempt,
      trigger: record.trigger,
      workerId,
      ...(record.tenantId === null ? {} : { tenantId: record.tenantId })
    })

    /** Runs one held job; `freeSlot` gives its concurrency permits back as soon as the handler is done. */
    const runJob = (entry: Held, freeSlot: Effect.Effect<void>): Effect.Effect<void> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const record = entry.record
          const handler = byName.get(record.name)
          yield* PubSub.publish(events, WorkerEvent.JobStarted({ job: record }))
          const span = yield* makeProcessSpan(record, settings.producerSpan, workerId)
          const series = Metrics.seriesOf(record.queue, record.name)
          const startedAt = yield* Clock.currentTimeNanos
          Metrics.recordStarted(series, (Number(startedAt / 1_000_000n) - record.runAt) / 1000)
          const attempt = Effect.annotateLogs(
            runAttempt(handler, record, jobLayer, JobContext.fromRecord(record, workerId)) as Effect.Effect<unknown, unknown>,
            jobLogAnnotations(record)
          )
          runningCount++
          const exit = yield* Effect.exit(restore(Effect.withParentSpan(attempt, span)))
          runningCount--
          // The next job may start while this one's settlement is written.
          yield* freeSlot
          const settlement = yield* settlementFor(record, handler?.job, exit, entry.stop)
          const endedAt = yield* Clock.currentTimeNanos
          const outcome = outcomeOf(settlement)
          endProcessSpan(span, outcome, exit, endedAt)
          Metrics.recordFinished(series, outcome, Number(endedAt - startedAt) / 1e9)
          const applied = settlement === undefined ? false : yield* submit(settlement)
          if (settlement?._tag === "Retry" || settlement?._tag === "Discard") {
            yield* Effect.logWarning(`job attempt failed: ${settlement._tag === "Retry" ? "will retry" : "discarded"}`)
              .pipe(
                Effect.annotateLogs({ ...jobLogAnnotations(record), error: settlement.error.message, module: "Worker" }),
                Effect.withParentSpan(span)
              )
          }
          unhold(record)
          yield* PubSub.publish(
            events,
            WorkerEvent.JobFinished({ job: record, outcome: settlement?._tag ?? "Lost", applied, exit })
          )
        })
      )

    /** Stop a held job: interrupt it if it runs; if it still waits in a buffer, settle it here. */
    const stopJob = (id: string, reason: StopReason) =>
      Effect.suspend(() => {
        const entry = held.get(id)
        if (entry === undefined || entry.stop !== undefined) return Effect.void
        entry.stop = reason
        if (entry.fiber !== undefined) return Fiber.interruptFork(entry.fiber)
        unhold(entry.record)
        return reason === "cancel"
          ? Effect.asVoid(submit(Settlement.Cancel({ ...leaseOf(entry.record), reason: "cancelled before it started" })))
          : Effect.void
      })

    // --- the loops ---------------------------------------------------------------------------
    const dispatch = (lane: { readonly buffer: Queue.Queue<JobRecord>; readonly permits: Effect.Semaphore }) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const record = yield* restore(Queue.take(lane.buffer))
          const entry = held.get(record.id)
          if (entry === undefined || entry.stop !== undefined) return
          yield* restore(Effect.zipRight(lane.permits.take(1), processPermits.take(1)))
          let released = false
          const releasePermits = Effect.suspend(() => {
            if (released) return Effect.void
            released = true
            return Effect.zipRight(lane.permits.release(1), processPermits.release(1))
          })
          if (entry.stop !== undefined) return yield* releasePermits
          // Forked from an uninterruptible region: the job itself must be interruptible again.
          entry.fiber = yield* FiberSet.run(
            running,
            Effect.interruptible(Effect.ensuring(runJob(entry, releasePermits), releasePermits))
          )
        })
      ).pipe(Effect.forever)

    // Claim in batches: wait until half the capacity is free (or nothing is left to run) rather
    // than claiming one job per finished job, which would cost a round trip per job.
    const refillAt = Math.max(1, Math.ceil(capacity / 2))
    let rotation = 0
    const freeSlots = () => {
      const free = capacity - held.size
      if (free < refillAt && held.size > runningCount) return []
      let remaining = free
      const slots: Array<{ queue: string; limit: number }> = []
      const queues = [...queueLimits]
      rotation = (rotation + 1) % Math.max(1, queues.length)
      for (let i = 0; i < queues.length && remaining > 0; i++) {
        const [queue, limit] = queues[(i + rotation) % queues.length]!
        const free = Math.min(queueCapacity(limit) - (heldByQueue.get(queue) ?? 0), remaining)
        if (free > 0) {
          slots.push({ queue, limit: free })
          remaining -= free
        }
      }
      return slots
    }

    type FetchState = { readonly _tag: "busy" } | { readonly _tag: "full" } | {
      readonly _tag: "idle"
      readonly nextRunAt: number | null
    }
    const busy: FetchState = { _tag: "busy" }
    const full: FetchState = { _tag: "full" }
    const fetchOnce: Effect.Effect<FetchState> = Effect.suspend(() => {
      const slots = freeSlots()
      if (slots.length === 0) return Effect.as(Queue.take(slotFreed), full)
      return store.claim({ workerId, queues: slots, leaseDuration: settings.leaseDuration }).pipe(
        Effect.map(({ jobs, nextRunAt }): FetchState => {
          for (const record of jobs) {
            hold(record)
            Queue.unsafeOffer(lanes.get(record.queue)!.buffer, record)
          }
          return jobs.length > 0 ? busy : { _tag: "idle", nextRunAt }
        }),
        Effect.catchAllCause((cause) =>
          Effect.as(Effect.logWarning("claiming jobs failed", cause), { _tag: "idle", nextRunAt: null } as const)
        )
      )
    })

    const pollBackoff = Schedule.exponential(settings.minPollInterval).pipe(
      Schedule.modifyDelay((delay) => Duration.min(delay, settings.pollInterval))
    )
    const fetchLoop = Effect.gen(function*() {
      const idle = yield* Schedule.driver(pollBackoff)
      while (true) {
        const state = yield* fetchOnce
        if (state._tag === "busy") {
          yield* idle.reset
        } else if (state._tag === "idle") {
          // Sleep until the next poll, a wake-up, or the next known run-at, whichever comes first.
          const waits = [Effect.ignore(idle.next(undefined)), Queue.take(workAvailable)]
          if (state.nextRunAt !== null) {
            const now = yield* Clock.currentTimeMillis
            waits.push(Effect.sleep(Duration.millis(Math.max(0, state.nextRunAt - now))))
          }
          yield* Effect.raceAll(waits)
        }
      }
    })

    const heartbeat = Effect.suspend(() => {
      if (held.size === 0) return Effect.void
      return store.heartbeat([...held.values()].map((entry) => leaseOf(entry.record)), settings.leaseDuration).pipe(
        Effect.flatMap(({ cancelRequested, lost }) =>
          Effect.zipRight(
            Effect.forEach(lost, (id) => stopJob(id, "lost"), { discard: true }),
            Effect.forEach(cancelRequested, (id) => stopJob(id, "cancel"), { discard: true })
          )
        )
      )
    })

    const rescue = store.rescue.pipe(
      Effect.tap((result) => Effect.sync(() => Metrics.recordRescued(result))),
      Effect.tap(({ discarded, retried }) =>
        retried.length + discarded.length > 0
          ? Effect.logInfo(`rescued ${retried.length + discarded.length} jobs whose lease expired`).pipe(
            Effect.annotateLogs({ retried: retried.length, discarded: discarded.length })
          )
          : Effect.void
      )
    )

    // Deletes finished jobs past their retention, a batch at a time, so no statement runs long.
    const pruneBatch = 1000
    const prune = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const cutoff = (keep: Duration.Duration) => Duration.isFinite(keep) ? now - Duration.toMillis(keep) : undefined
      const finishedBefore = Object.fromEntries(
        Object.entries(settings.retention).flatMap(([state, keep]) => {
          const before = cutoff(keep)
          return before === undefined ? [] : [[state, before]]
        })
      )
      if (Object.keys(finishedBefore).length === 0) return
      let total = 0
      while (true) {
        const deleted = yield* store.prune({ finishedBefore, limit: pruneBatch })
        total += deleted
        if (deleted < pruneBatch) break
      }
      if (total > 0) yield* Effect.logDebug(`pruned ${total} finished jobs`)
    })

    const every = (interval: Duration.Duration, name: string, task: Effect.Effect<void, unknown>) =>
      task.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning(`${name} failed`, cause)),
        Effect.repeat(Schedule.spaced(interval)),
        Effect.annotateLogs(workerLogs),
        Effect.forkScoped
      )

    // Subscribed before the first claim, so no wake-up or cancellation falls between the two.
    const wakeups = yield* store.subscribeWakeups.pipe(Effect.orDie)
    const cancellations = yield* store.subscribeCancellations.pipe(Effect.orDie)
    const listeners = yield* Effect.all([
      wakeups.pipe(
        Stream.filter((queue) => queue === "*" || queueLimits.has(queue)),
        Stream.runForEach(() => Queue.offer(workAvailable, undefined)),
        Effect.forkScoped
      ),
      cancellations.pipe(Stream.runForEach((id) => stopJob(id, "cancel")), Effect.forkScoped)
    ])
    const heartbeatFiber = yield* every(settings.heartbeatInterval, "heartbeat", heartbeat)
    const rescueFiber = yield* every(settings.rescueInterval, "rescue", rescue)
    const pruneFiber = yield* every(settings.pruneInterval, "prune", prune)
    const dispatchers = yield* Effect.forEach(lanes.values(), (lane) => Effect.forkScoped(dispatch(lane)))
    const fetcher = yield* Effect.forkScoped(Effect.annotateLogs(fetchLoop, workerLogs))

    yield* Effect.logInfo("worker started").pipe(
      Effect.annotateLogs({ ...workerLogs, concurrency, queues: [...queueLimits.keys()].join(",") })
    )

    // --- graceful shutdown (runs first: registered last) ---------------------------------------
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Fiber.interruptAll([fetcher, rescueFiber, pruneFiber, ...dispatchers, ...listeners])
        const buffered = [...held.values()].filter((entry) => entry.fiber === undefined)
        for (const entry of buffered) unhold(entry.record)
        yield* Effect.forEach(buffered, (entry) => submit(Settlement.Release(leaseOf(entry.record))), {
          concurrency: "unbounded",
          discard: true
        })
        const inFlight = [...held.values()].flatMap((entry) => entry.fiber === undefined ? [] : [entry.fiber])
        if (inFlight.length > 0) {
          yield* Effect.logInfo(`shutting down: waiting up to ${Duration.format(settings.shutdownGrace)} for ${inFlight.length} running jobs`)
          const drained = yield* Fiber.awaitAll(inFlight).pipe(
            Effect.interruptible,
            Effect.timeout(settings.shutdownGrace),
            Effect.option
          )
          if (drained._tag === "None") {
            const left = [...held.values()]
            yield* Effect.logWarning(`shutdown grace period over: interrupting and releasing ${left.length} jobs`)
            for (const entry of left) entry.stop ??= "shutdown"
            yield* Fiber.interruptAll(left.flatMap((entry) => entry.fiber === undefined ? [] : [entry.fiber]))
          }
        }
        yield* Fiber.interrupt(heartbeatFiber)
        yield* Effect.logInfo("worker stopped")
      }).pipe(Effect.annotateLogs(workerLogs))
    )

    return {
      id: workerId,
      events,
      /** Jobs this worker holds now (running or buffered). */
      held: Effect.sync(() => held.size)
    }
  })
