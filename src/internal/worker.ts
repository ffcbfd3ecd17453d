/**
 * The worker loop. One fetcher claims jobs in batches into per-queue buffers; a fixed set of
 * runner fibers (the concurrency) run them, each job in its own scope, under each queue's
 * limit, and hand their settlements to the settler, which writes them in batches. One heartbeat
 * fiber extends every held lease in a single store call; a rescuer returns jobs whose workers
 * died. Shutdown stops claiming, releases buffered jobs, lets running
 * ones finish within the grace period, then interrupts and releases the rest.
 */
import * as Os from "node:os"
import {
  Cause,
  Clock,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Either,
  Equal,
  Exit,
  Fiber,
  type FiberId,
  FiberRef,
  FiberRefs,
  HashMap,
  Layer,
  PubSub,
  Queue,
  Random,
  Schedule,
  Scope,
  Stream,
  Tracer
} from "effect"
import type { StoreError } from "../Errors.js"
import type { JobHandler } from "../Job.js"
import { JobContext } from "../JobContext.js"
import { type JobRecord, JobStore, type LocalReservation, Settlement } from "../JobStore.js"
import * as WorkerConfig from "../WorkerConfig.js"
import { completion, failureSettlement, type InstallServices, runAttempt, type StopReason } from "./attempt.js"
import { makeEventLoopTurns } from "./eventLoopTurns.js"
import * as Metrics from "./metrics.js"
import { validateName } from "./names.js"
import { makeSettler } from "./settler.js"
import { builtInTracer, endProcessSpan, makeProcessSpan, outcomeOf } from "./tracing.js"

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

/**
 * Put a fiber's FiberRefs back as they were, from the fiber itself. The runtime's own
 * `setFiberRefs` swaps the whole set in one step; `Effect.setFiberRefs` is the public fallback
 * (it resets the refs in the snapshot one by one).
 */
const resetFiberRefs = (fiber: Fiber.RuntimeFiber<unknown, unknown>, fiberRefs: FiberRefs.FiberRefs): Effect.Effect<void> => {
  const runtime = fiber as unknown as { setFiberRefs?: (fiberRefs: FiberRefs.FiberRefs) => void }
  if (typeof runtime.setFiberRefs !== "function") return Effect.setFiberRefs(fiberRefs)
  runtime.setFiberRefs(fiberRefs)
  return Effect.void
}

/** A runner's FiberRefs between jobs, and the two of them a job adds to. */
interface Baseline {
  readonly runnerId: FiberId.Single
  readonly fiberRefs: FiberRefs.FiberRefs
  readonly context: Context.Context<never>
  readonly annotations: HashMap.HashMap<string, unknown>
  /** What lies under the runner's own value in each of the two refs' stacks. */
  readonly contextBelow: ReadonlyArray<readonly [FiberId.Single, unknown]>
  readonly annotationsBelow: ReadonlyArray<readonly [FiberId.Single, unknown]>
  /** The runner's annotations plus those that jobs of one kind share, by kind (see `jobAnnotations`). */
  readonly kinds: Map<string, HashMap.HashMap<string, unknown>>
  /** The kind of the last job whose annotations were built, and its shared annotations. */
  lastKind: (Pick<JobRecord, "name" | "queue" | "attempt" | "trigger" | "tenantId"> & {
    readonly shared: HashMap.HashMap<string, unknown>
  }) | undefined
}

const makeBaseline = (runnerId: FiberId.Single, fiberRefs: FiberRefs.FiberRefs): Baseline => {
  const below = (ref: FiberRef.FiberRef<unknown>) => {
    const stack = fiberRefs.locals.get(ref) ?? []
    return stack.length > 0 && Equal.equals(stack[0]![0], runnerId) ? stack.slice(1) : stack
  }
  return {
    runnerId,
    fiberRefs,
    context: FiberRefs.getOrDefault(fiberRefs, FiberRef.currentContext),
    annotations: FiberRefs.getOrDefault(fiberRefs, FiberRef.currentLogAnnotations),
    contextBelow: below(FiberRef.currentContext as FiberRef.FiberRef<unknown>),
    annotationsBelow: below(FiberRef.currentLogAnnotations as FiberRef.FiberRef<unknown>),
    kinds: new Map(),
    lastKind: undefined
  }
}

/**
 * The runner's FiberRefs with a job's context and log annotations as the runner's own values:
 * what `FiberRefs.updateManyAs` makes, built directly, as that first compares each new value
 * with the old one by `Equal` (hashing a whole annotation map), a cost per job with no use here.
 */
const jobFiberRefs = (
  baseline: Baseline,
  context: Context.Context<never>,
  annotations: HashMap.HashMap<string, unknown>
): FiberRefs.FiberRefs => {
  const locals = new Map(baseline.fiberRefs.locals)
  locals.set(FiberRef.currentContext, [[baseline.runnerId, context], ...baseline.contextBelow])
  locals.set(FiberRef.currentLogAnnotations, [[baseline.runnerId, annotations], ...baseline.annotationsBelow])
  return FiberRefs.unsafeMake(locals)
}

/** A queue's claimed jobs waiting for a runner, and how many of its jobs run now. */
interface Lane {
  readonly limit: number
  readonly buffer: Array<Held | undefined>
  head: number
  running: number
  /** Buffered, running, or promised to jobs being enqueued in this process (see `reserve`). */
  occupied: number
  /** The last claim for this queue took fewer jobs than asked: none due is left in the database. */
  caughtUp: boolean
}

/** A job this worker holds a lease on, from its claim until its settlement is written. */
interface Held {
  readonly record: JobRecord
  readonly lane: Lane
  phase: "buffered" | "running" | "settling"
  /** The runner fiber while the job runs: interrupting it interrupts the job. */
  runner: Fiber.RuntimeFiber<unknown, unknown> | undefined
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
    const clock = yield* Effect.clock
    // Effect's built-in tracer keeps spans in memory and exports nothing: with it, a job's
    // `process` span would cost more than a no-op job and be seen by no one.
    const traced = (yield* Effect.tracer) !== builtInTracer
    const events = yield* PubSub.unbounded<WorkerEvent>()
    /** Published in place, twice per job: an effect per event cost more than the event itself. */
    const publishEvent = (event: WorkerEvent) => {
      Queue.unsafeOffer(events, event)
    }
    const settler = yield* makeSettler(store)
    // A retention of zero deletes a completed job with its settlement, instead of a pruner later.
    const keepCompleted = !Duration.isZero(settings.retention.completed)
    const held = new Map<string, Held>()
    const slotFreed = yield* Queue.sliding<void>(1)
    const workAvailable = yield* Queue.sliding<void>(1)
    const lanes = new Map<string, Lane>(
      Array.from(queueLimits, ([queue, limit]) => [queue, { limit, buffer: [], head: 0, running: 0, occupied: 0, caughtUp: false }])
    )
    const laneList = [...lanes.values()]

    /** Across lanes: jobs running, or buffered or running (what capacity counts; settling ones only wait for a write). */
    const total = (count: (lane: Lane) => number) =>
      laneList.length === 1 ? count(laneList[0]!) : laneList.reduce((sum, lane) => sum + count(lane), 0)
    // Claim in batches: wait until half the capacity is free (or nothing is left to run) rather
    // than claiming one job per finished job, which would cost a round trip per job.
    const refillAt = Math.max(1, Math.ceil(capacity / 2))
    /** Whether the worker has room for a claim: half its capacity free, or nothing buffered. */
    const wantsClaim = () => {
      const occupied = total((lane) => lane.occupied)
      // Jobs waiting for their settlement do not hold capacity, within reason: a store that
      // cannot write settlements must not let the worker claim ever more.
      return !(capacity - occupied < refillAt && occupied > total((lane) => lane.running)) && held.size < 2 * capacity
    }
    /** Shutdown has begun: no more claims, no more jobs handed over at enqueue. */
    let stopFetching = false
    /** Shutdown has released the buffered jobs: runners stop taking jobs. */
    let draining = false
    const allSettled = yield* Deferred.make<void>()
    const hold = (record: JobRecord) => {
      const lane = lanes.get(record.queue)!
      const entry: Held = { record, lane, phase: "buffered", runner: undefined, stop: undefined }
      held.set(record.id, entry)
      lane.occupied++
      lane.buffer.push(entry)
    }
    /** Wake the fetcher if it waits for room and now has it (not for every finished job: a wake-up costs more than the check). */
    const roomFreed = () => {
      if (wantsClaim()) Queue.unsafeOffer(slotFreed, undefined)
    }
    const vacate = (entry: Held) => {
      entry.lane.occupied--
      roomFreed()
    }
    const unhold = (entry: Held) => {
      if (!held.delete(entry.record.id)) return
      if (entry.phase === "buffered") vacate(entry)
      else roomFreed()
      if (draining && held.size === 0) Deferred.unsafeDone(allSettled, Exit.void)
    }
    const settleFailed = "could not settle job; its lease will expire and it will be rescued"
    const leaseOf = (record: JobRecord) => ({ id: record.id, token: record.leaseToken })
    const settleNow = (settlement: Settlement) =>
      settler.settle(settlement).pipe(
        Effect.catchAllCause((cause) =>
          Effect.as(Effect.logWarning(settleFailed, cause), false)
        )
      )

    // --- handing jobs to runners ---------------------------------------------------------------
    // A fixed set of runner fibers (one per unit of concurrency) take jobs from the lanes and run
    // them one after another, each in its own scope: forking a fiber per job would cost more than
    // a no-op job itself. A runner whose job is interrupted retires and is replaced.
    let laneRotation = 0
    /** The next buffered job of a lane under its limit, fairly across lanes; marks it running. */
    const takeReady = (): Held | undefined => {
      for (let k = 0; k < laneList.length; k++) {
        const lane = laneList[(laneRotation + k) % laneList.length]!
        if (lane.running >= lane.limit) continue
        while (lane.head < lane.buffer.length) {
          const entry = lane.buffer[lane.head]!
          lane.buffer[lane.head++] = undefined
          if (lane.head === lane.buffer.length) {
            lane.buffer.length = 0
            lane.head = 0
          } else if (lane.head >= 1024 && lane.head * 2 >= lane.buffer.length) {
            // A buffer that never quite empties must not grow forever.
            lane.buffer.splice(0, lane.head)
            lane.head = 0
          }
          if (entry.stop !== undefined || entry.phase !== "buffered") continue
          lane.running++
          laneRotation = (laneRotation + k + 1) % laneList.length
          return entry
        }
      }
      return undefined
    }
    const idleRunners: Array<() => void> = []
    /** Wakes up to `count` idle runners; answers how many it woke. */
    const wakeRunners = (count: number) => {
      let woken = 0
      for (; woken < count && idleRunners.length > 0; woken++) idleRunners.pop()!()
      return woken
    }
    const waitForWork = Effect.async<void>((resume) => {
      const wake = () => resume(Effect.void)
      idleRunners.push(wake)
      return Effect.sync(() => {
        const at = idleRunners.indexOf(wake)
        if (at >= 0) idleRunners.splice(at, 1)
      })
    })
    // --- jobs handed over at enqueue -------------------------------------------------------
    // Jobs enqueued in this process are inserted already claimed for this worker and handed over
    // when the insert returns, when it has room for them as a claim would: no wake-up, no claim
    // round trip, and no claim's work in the database. Only while the queue's last claim found
    // no more due jobs than it took, so that jobs handed over do not pass ones waiting in the
    // database; a full claim ends that until a claim comes back short again.
    const reserve = (queue: string, name: string, count: number): LocalReservation | undefined => {
      const lane = lanes.get(queue)
      // A job this worker has no handler for is left to a worker that has one.
      if (lane === undefined || !lane.caughtUp || !byName.has(name) || stopFetching) return undefined
      const room = Math.min(count, queueCapacity(lane.limit) - lane.occupied, capacity - total((lane) => lane.occupied))
      if (room <= 0) return undefined
      lane.occupied += room
      let settled = false
      const release = () => {
        settled = true
        lane.occupied -= room
      }
      return {
        count: room,
        take: (records) =>
          Effect.suspend(() => {
            if (settled) return Effect.void
            release()
            // Shutting down meanwhile: give the jobs back at once rather than hold them.
            if (draining) return Effect.ignore(store.settle(records.map((record) => Settlement.Release(leaseOf(record)))))
            for (const record of records) hold(record)
            // The woken runners go first: otherwise they would wait for the enqueuing fiber to
            // finish its own work (spans, metrics, answering the caller), about a tenth of a
            // millisecond of an idle worker's enqueue-to-start latency, measured.
            return wakeRunners(records.length) > 0 ? Effect.yieldNow() : Effect.void
          }),
        cancel: () => {
          if (settled) return
          release()
          roomFreed()
        }
      }
    }

    // --- running one job -------------------------------------------------------------------
    const addJobLogAnnotations = (record: JobRecord) => (annotations: HashMap.HashMap<string, unknown>) =>
      HashMap.mutate(annotations, (map) => {
        HashMap.set(map, "jobId", record.id)
        HashMap.set(map, "jobName", record.name)
        HashMap.set(map, "queue", record.queue)
        HashMap.set(map, "attempt", record.attempt)
        HashMap.set(map, "trigger", record.trigger)
        HashMap.set(map, "workerId", workerId)
        if (record.tenantId !== null) HashMap.set(map, "tenantId", record.tenantId)
      })
    const withJobLogAnnotations = (record: JobRecord) =>
      Effect.locallyWith(FiberRef.currentLogAnnotations, addJobLogAnnotations(record))
    /**
     * A job's log annotations on a runner: all but the job id are the same for every job of one
     * name, queue, attempt, trigger and tenant, so that part is built once per kind and the job
     * adds its id (building all seven per job was the largest allocation of a no-op job).
     */
    const jobAnnotations = (baseline: Baseline, record: JobRecord) => {
      const last = baseline.lastKind
      if (
        last !== undefined && last.name === record.name && last.queue === record.queue &&
        last.attempt === record.attempt && last.trigger === record.trigger && last.tenantId === record.tenantId
      ) return HashMap.set(last.shared, "jobId", record.id)
      const kind = `${record.name}\n${record.queue}\n${record.attempt}\n${record.trigger}\n${record.tenantId ?? "\u0000"}`
      let shared = baseline.kinds.get(kind)
      if (shared === undefined) {
        // Tenants can be many: a bounded cache, started afresh when full.
        if (baseline.kinds.size >= 256) baseline.kinds.clear()
        shared = addJobLogAnnotations(record)(baseline.annotations)
        baseline.kinds.set(kind, shared)
      }
      // Jobs of one kind tend to come in runs: the next is checked against this one first.
      const { attempt, name, queue, tenantId, trigger } = record
      baseline.lastKind = { name, queue, attempt, trigger, tenantId, shared }
      return HashMap.set(shared, "jobId", record.id)
    }

    /** What to do once a job's settlement is written (or was not needed). */
    const finished = (entry: Held, settlement: Settlement | undefined, exit: Exit.Exit<unknown, unknown>, span: Tracer.Span | undefined) =>
    (result: Either.Either<boolean, StoreError>): Effect.Effect<void> | undefined => {
      const record = entry.record
      unhold(entry)
      const applied = Either.getOrElse(result, () => false)
      const publish = () =>
        publishEvent(WorkerEvent.JobFinished({ job: record, outcome: settlement?._tag ?? "Lost", applied, exit }))
      if (Either.isLeft(result)) {
        return Effect.zipRight(
          Effect.logWarning(settleFailed, result.left).pipe(
            withJobLogAnnotations(record)
          ),
          Effect.sync(publish)
        )
      }
      if (settlement?._tag === "Retry" || settlement?._tag === "Discard") {
        const warning = Effect.logWarning(`job attempt failed: ${settlement._tag === "Retry" ? "will retry" : "discarded"}`)
          .pipe(
            Effect.annotateLogs({ error: settlement.error.message, module: "Worker" }),
            withJobLogAnnotations(record)
          )
        return Effect.zipRight(span === undefined ? warning : Effect.withParentSpan(warning, span), Effect.sync(publish))
      }
      publish()
      return undefined
    }

    /**
     * Runs one job on the calling runner (uninterruptible but for the attempt itself) and hands
     * its settlement to the settler. Answers whether the runner must retire: an interruption was
     * aimed at this job, and may still be pending on the runner.
     *
     * The attempt writes its services and log annotations into the runner's own FiberRefs, and
     * the runner puts them back afterwards: cheaper than scoping each one, and it also undoes
     * whatever the handler itself set. Written without generators: this runs once per job.
     */
    const runJob = (
      entry: Held,
      runner: Fiber.RuntimeFiber<unknown, unknown>,
      restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
      baseline: Baseline
    ): Effect.Effect<boolean> => {
      const record = entry.record
      const handler = byName.get(record.name)
      entry.phase = "running"
      entry.runner = runner
      const attempt = (span: Tracer.Span | undefined): Effect.Effect<boolean> => {
        const series = Metrics.seriesOf(record.queue, record.name)
        const startedAt = clock.unsafeCurrentTimeNanos()
        Metrics.recordStarted(series, (Number(startedAt) / 1e6 - record.runAt) / 1000)
        // The job's services and log annotations, written into the runner's FiberRefs at once.
        const install: InstallServices = (services) =>
          Effect.withFiberRuntime((fiber) => {
            if (fiber === runner) {
              return resetFiberRefs(
                runner,
                jobFiberRefs(baseline, Context.merge(baseline.context, services), jobAnnotations(baseline, record))
              )
            }
            // Under a timeout the attempt runs on a child fiber of the runner, which dies with it.
            return Effect.zipRight(
              FiberRef.update(FiberRef.currentContext, (current) => Context.merge(current, services)),
              FiberRef.update(FiberRef.currentLogAnnotations, addJobLogAnnotations(record))
            )
          })
        /** The attempt is over (its scope closed): free its slot and hand its settlement over. */
        const settleExit = (exit: Exit.Exit<unknown, unknown>): Effect.Effect<boolean> => {
          entry.phase = "settling"
          entry.runner = undefined
          entry.lane.running--
          vacate(entry)
          const settle = (settlement: Settlement | undefined): Effect.Effect<boolean> => {
            const endedAt = clock.unsafeCurrentTimeNanos()
            const outcome = outcomeOf(settlement)
            if (span !== undefined) endProcessSpan(span, outcome, exit, endedAt)
            Metrics.recordFinished(series, outcome, Number(endedAt - startedAt) / 1e9)
            const onSettled = finished(entry, settlement, exit, span)
            const retire = entry.stop !== undefined
            if (settlement === undefined) return Effect.as(onSettled(Either.right(false)) ?? Effect.void, retire)
            settler.submit(settlement, onSettled)
            return retire ? Effect.succeed(true) : continueRunning
          }
          return Exit.isSuccess(exit)
            ? settle(completion(record, handler?.job, exit.value, keepCompleted))
            : Effect.flatMap(failureSettlement(record, handler?.job, exit.cause, entry.stop), settle)
        }
        return Effect.flatMap(Scope.make(), (scope) => {
          const context = JobContext.fromRecord(record, workerId)
          const program = runAttempt(handler, record, jobLayer, context, span, { install, scope }) as Effect.Effect<unknown, unknown>
          // The job's scope closes with the job's FiberRefs still in place, then the runner's come
          // back. A finalizer that fails makes the attempt fail, as a finalizer around it would.
          return Effect.flatMap(Effect.exit(restore(program)), (attemptExit) =>
            Effect.flatMap(
              Effect.zipLeft(Effect.exit(Scope.close(scope, attemptExit)), resetFiberRefs(runner, baseline.fiberRefs)),
              (closed) => settleExit(Exit.isSuccess(closed) ? attemptExit : Exit.zipLeft(attemptExit, closed))
            ))
        })
      }
      publishEvent(WorkerEvent.JobStarted({ job: record }))
      return traced ? Effect.flatMap(makeProcessSpan(record, settings.producerSpan, workerId), attempt) : attempt(undefined)
    }
    const continueRunning = Effect.succeed(false)
    // A turn every 2 ms or so: a claim's answer then waits about that long to be read. Drains
    // of 40,000 no-op jobs on PostgreSQL read 36,000-42,000 jobs/s with turns every 1, 2 or
    // 5 ms, against 26,000-33,000 without, measured.
    const eventLoop = makeEventLoopTurns(2)

    /** One runner's life: jobs one after another until the worker drains or a job is interrupted. */
    const runner = Effect.uninterruptibleMask((restore) =>
      Effect.withFiberRuntime<void>((fiber) => {
        const waitForJob = restore(waitForWork)
        const jobsFrom = (baseline: Baseline) => {
          const afterTurn: Effect.Effect<void> = Effect.suspend(() => Effect.zipRight(restore(eventLoop.nextTurn), next))
          const next: Effect.Effect<void> = Effect.suspend(() => {
            if (draining) return Effect.void
            const entry = takeReady()
            if (entry === undefined) return Effect.flatMap(waitForJob, () => next)
            return Effect.flatMap(
              runJob(entry, fiber, restore, baseline),
              (retire) => retire ? Effect.void : eventLoop.due() ? afterTurn : next
            )
          })
          return next
        }
        // Hold the refs a job sets, so that putting the runner's refs back also covers them;
        // then every job starts from, and returns to, the refs as they are now.
        return Effect.zipRight(
          Effect.flatMap(FiberRef.get(FiberRef.currentLogAnnotations), (annotations) =>
            FiberRef.set(FiberRef.currentLogAnnotations, annotations)),
          Effect.suspend(() => {
            return jobsFrom(makeBaseline(fiber.id(), fiber.getFiberRefs()))
          })
        )
      })
    )
    /** A unit of concurrency: a runner, replaced whenever one retires, until the worker drains. */
    const slot = Effect.gen(function*() {
      while (!draining) {
        // A child of the slot, itself in the worker's scope: interrupted with it.
        const exit = yield* Fiber.await(yield* Effect.fork(runner))
        if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) {
          yield* Effect.logError("a job runner died", exit.cause).pipe(Effect.annotateLogs(workerLogs))
        }
      }
    })

    /** Stop a held job: interrupt it if it runs; if it still waits in a buffer, settle it here. */
    const stopJob = (id: string, reason: StopReason) =>
      Effect.suspend(() => {
        const entry = held.get(id)
        if (entry === undefined || entry.stop !== undefined || entry.phase === "settling") return Effect.void
        entry.stop = reason
        if (entry.phase === "running") return Fiber.interruptFork(entry.runner!)
        unhold(entry)
        return reason === "cancel"
          ? Effect.asVoid(settleNow(Settlement.Cancel({ ...leaseOf(entry.record), reason: "cancelled before it started" })))
          : Effect.void
      })

    // --- the loops ---------------------------------------------------------------------------
    // Claims grow from a first batch of a few hundred jobs, doubling while each comes back full:
    // the first jobs start after a short claim instead of waiting for a large one (on PostgreSQL
    // a claim costs some microseconds per row), and the claims that follow overlap with running
    // those. Below a few hundred rows a claim's cost is mostly its round trip, so a smaller first
    // batch only adds doubling steps, each leaving the runners idle for about a round trip:
    // starting at 256 rather than 32 drained 20,000 jobs 4.5% faster (median of 16), measured.
    // It does not shrink again: starting small after every lull cost a producing and working
    // process three claims per batch of new jobs instead of one, measured.
    const firstClaim = Math.min(capacity, Math.max(2 * concurrency, 256))
    let claimBudget = firstClaim
    let rotation = 0
    const freeSlots = () => {
      if (!wantsClaim()) return []
      let remaining = Math.min(capacity - total((lane) => lane.occupied), claimBudget)
      const slots: Array<{ queue: string; limit: number }> = []
      const queues = [...queueLimits]
      rotation = (rotation + 1) % Math.max(1, queues.length)
      for (let i = 0; i < queues.length && remaining > 0; i++) {
        const [queue, limit] = queues[(i + rotation) % queues.length]!
        const free = Math.min(queueCapacity(limit) - lanes.get(queue)!.occupied, remaining)
        if (free > 0) {
          slots.push({ queue, limit: free })
          remaining -= free
        }
      }
      return slots
    }

    type FetchState = { readonly _tag: "busy" } | { readonly _tag: "drained" } | { readonly _tag: "full" } | {
      readonly _tag: "idle"
      readonly nextRunAt: number | null
    }
    const busy: FetchState = { _tag: "busy" }
    const drained: FetchState = { _tag: "drained" }
    const full: FetchState = { _tag: "full" }
    // A claim asks only the queues its room reaches, from a rotating start. When those had no
    // more, the queues with room that it left out are asked before the fetcher waits: their jobs
    // would otherwise wait for a poll (backing off to `pollInterval`) while the worker had room.
    const askedSinceWait = new Set<string>()
    let nextRunAtSinceWait: number | null = null
    const leftOut = () => {
      for (const [queue, limit] of queueLimits) {
        if (!askedSinceWait.has(queue) && queueCapacity(limit) - lanes.get(queue)!.occupied > 0) return true
      }
      return false
    }
    const fetchOnce: Effect.Effect<FetchState> = Effect.suspend(() => {
      const slots = freeSlots()
      if (slots.length === 0) return Effect.as(Queue.take(slotFreed), full)
      return store.claim({ workerId, queues: slots, leaseDuration: settings.leaseDuration }).pipe(
        Effect.map(({ jobs, nextRunAt }): FetchState => {
          for (const record of jobs) hold(record)
          wakeRunners(jobs.length)
          // Jobs per queue, counted only when the claim asked several.
          const claimed = new Map<string, number>()
          if (slots.length > 1) for (const record of jobs) claimed.set(record.queue, (claimed.get(record.queue) ?? 0) + 1)
          let caughtUp = true
          for (const slot of slots) {
            const lane = lanes.get(slot.queue)!
            lane.caughtUp = (slots.length === 1 ? jobs.length : claimed.get(slot.queue) ?? 0) < slot.limit
            caughtUp &&= lane.caughtUp
            askedSinceWait.add(slot.queue)
          }
          if (jobs.length >= slots.reduce((sum, slot) => sum + slot.limit, 0)) {
            claimBudget = Math.min(capacity, claimBudget * 2)
            askedSinceWait.clear()
            return busy
          }
          // Every queue gave fewer than asked: none has more due now, and claiming again at once
          // would only find nothing (then ask for the next run-at): two round trips per batch of
          // new jobs, measured. Wait for a wake-up or the shortest poll instead, once every
          // queue with room has been asked.
          if (!caughtUp) return busy
          if (nextRunAt !== null) nextRunAtSinceWait = Math.min(nextRunAt, nextRunAtSinceWait ?? nextRunAt)
          if (leftOut()) return busy
          const next = nextRunAtSinceWait
          askedSinceWait.clear()
          nextRunAtSinceWait = null
          return jobs.length === 0 ? { _tag: "idle", nextRunAt: next } : drained
        }),
        Effect.catchAllCause((cause) =>
          Effect.as(Effect.logWarning("claiming jobs failed", cause), { _tag: "idle", nextRunAt: null } as const)
        )
      )
    })

    // Idle, the fetcher sleeps until the next poll (backing off from `minPollInterval` to
    // `pollInterval`), a wake-up, or the next known run-at. The poll timer offers into the same
    // queue as wake-ups, so a wake-up is a single queue take away: racing the waits instead cost
    // about half a millisecond per wake-up, measured.
    const minPollMillis = Duration.toMillis(settings.minPollInterval)
    const maxPollMillis = Duration.toMillis(settings.pollInterval)
    // Shutdown asks the fetcher to stop (`stopFetching`) rather than interrupting it at once: a
    // claim in flight may already be applied by the database, and its jobs must be held (then
    // run or released) rather than left running on leases no one renews, each costing an
    // attempt once rescued.
    const fetchLoop = Effect.gen(function*() {
      let pollMillis = minPollMillis
      while (!stopFetching) {
        const state = yield* fetchOnce
        if (state._tag === "busy") {
          pollMillis = minPollMillis
          // Let the runners start the claimed jobs before the next claim, which on SQLite holds
          // the thread while it runs.
          yield* Effect.yieldNow()
        } else if (state._tag === "idle" || state._tag === "drained") {
          let wait = pollMillis
          if (state._tag === "drained") wait = pollMillis = minPollMillis
          else pollMillis = Math.min(pollMillis * 2, maxPollMillis)
          if (state._tag === "idle" && state.nextRunAt !== null) {
            wait = Math.min(wait, Math.max(0, state.nextRunAt - (yield* Clock.currentTimeMillis)))
          }
          // A child of the fetcher, interrupted once the wait is over.
          const timer = yield* Effect.fork(
            Effect.zipRight(Effect.sleep(Duration.millis(wait)), Queue.offer(workAvailable, undefined))
          )
          yield* Queue.take(workAvailable)
          // An idle worker's timer is what woke it: nothing to stop (interrupting forks a fiber).
          if (timer.unsafePoll() === null) yield* Fiber.interruptFork(timer)
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
    yield* store.registerLocalWorker({ workerId, leaseDuration: settings.leaseDuration, reserve })
    const heartbeatFiber = yield* every(settings.heartbeatInterval, "heartbeat", heartbeat)
    const rescueFiber = yield* every(settings.rescueInterval, "rescue", rescue)
    const pruneFiber = yield* every(settings.pruneInterval, "prune", prune)
    const slots = yield* Effect.forEach(Array.from({ length: concurrency }), () => Effect.forkScoped(slot))
    const fetcher = yield* Effect.forkScoped(Effect.annotateLogs(fetchLoop, workerLogs))

    yield* Effect.logInfo("worker started").pipe(
      Effect.annotateLogs({ ...workerLogs, concurrency, queues: [...queueLimits.keys()].join(",") })
    )

    // --- graceful shutdown (runs first: registered last) ---------------------------------------
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        // One grace period for the whole shutdown: the claim in flight, then the running jobs.
        const graceEnds = (yield* Clock.currentTimeMillis) + Duration.toMillis(settings.shutdownGrace)
        const graceLeft = Effect.map(Clock.currentTimeMillis, (now) => Duration.millis(Math.max(0, graceEnds - now)))
        stopFetching = true
        Queue.unsafeOffer(workAvailable, undefined)
        Queue.unsafeOffer(slotFreed, undefined)
        yield* Fiber.await(fetcher).pipe(Effect.timeout(settings.shutdownGrace), Effect.ignore)
        yield* Fiber.interruptAll([fetcher, rescueFiber, pruneFiber, ...listeners])
        draining = true
        wakeRunners(idleRunners.length)
        const buffered = [...held.values()].filter((entry) => entry.phase === "buffered")
        for (const entry of buffered) unhold(entry)
        yield* Effect.forEach(buffered, (entry) => settleNow(Settlement.Release(leaseOf(entry.record))), {
          concurrency: "unbounded",
          discard: true
        })
        const running = total((lane) => lane.running)
        const left = yield* graceLeft
        if (running > 0) {
          yield* Effect.logInfo(`shutting down: waiting up to ${Duration.format(left)} for ${running} running jobs`)
        }
        const drained = yield* Fiber.awaitAll(slots).pipe(
          Effect.interruptible,
          Effect.timeout(left),
          Effect.option
        )
        if (drained._tag === "None") {
          const stillRunning = [...held.values()].filter((entry) => entry.phase === "running")
          yield* Effect.logWarning(`shutdown grace period over: interrupting and releasing ${stillRunning.length} jobs`)
          for (const entry of stillRunning) entry.stop ??= "shutdown"
          yield* Effect.forEach(stillRunning, (entry) => Fiber.interruptFork(entry.runner!), { discard: true })
          yield* Fiber.awaitAll(slots)
        }
        // Every settlement handed to the settler is written before the worker's scope closes.
        if (held.size > 0) yield* Deferred.await(allSettled)
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
