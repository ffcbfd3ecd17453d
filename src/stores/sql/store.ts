/**
 * The SQL job store: the logic shared by every SQL database, over the statements of one
 * `Dialect`. Time comes from `Clock` and is passed to every statement.
 */
import { TransactionConnection } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Context, Duration, Effect, Fiber, Option, PubSub, Stream } from "effect"
import { StoreError } from "../../Errors.js"
import type {
  AttemptError,
  CronTick,
  InsertResult,
  JobInsert,
  JobRecord,
  JobState,
  JobStoreShape,
  Lease,
  Settlement,
  Trigger
} from "../../JobStore.js"
import { drawTokenStep } from "../../internal/leaseTokens.js"
import { type ClaimStamp, claimedRecord, type LocalClaim, makeLocalWorkers } from "../../internal/localWorkers.js"
import { type CompleteRow, type Dialect, type InsertRow, type JobRow, type SettleRow } from "./dialect.js"

const num = (value: number | string | bigint | null): number | null => value === null ? null : Number(value)

export const toRecord = (row: JobRow): JobRecord => ({
  id: String(row.id),
  name: row.name,
  queue: row.queue,
  state: row.state as JobState,
  payload: row.payload,
  priority: Number(row.priority),
  attempt: Number(row.attempt),
  maxAttempts: Number(row.max_attempts),
  trigger: row.trigger as Trigger,
  tenantId: row.tenant_id,
  metadata: row.metadata === null ? {} : JSON.parse(row.metadata),
  uniqueKey: row.unique_key,
  traceContext: row.trace_context,
  enqueuedAt: Number(row.enqueued_at),
  runAt: Number(row.run_at),
  attemptedAt: num(row.attempted_at),
  finishedAt: num(row.finished_at),
  leaseToken: Number(row.lease_token),
  leaseExpiresAt: num(row.lease_expires_at),
  workerId: row.worker_id,
  cancelRequested: Boolean(row.cancel_requested),
  errors: (typeof row.errors === "string" ? JSON.parse(row.errors) : row.errors) as ReadonlyArray<AttemptError>,
  result: row.result
})

/** A claimed job from the values of `claimedColumns`, and what the claim itself set. */
const toClaimedRecord = (
  row: ReadonlyArray<unknown>,
  claim: ClaimStamp
): JobRecord => {
  const metadata = row[9] as string | null
  const errors = row[15] as string | ReadonlyArray<AttemptError>
  return {
    id: String(row[0]),
    name: row[1] as string,
    queue: row[2] as string,
    state: "running",
    payload: row[3] as string,
    priority: Number(row[4]),
    attempt: Number(row[5]),
    maxAttempts: Number(row[6]),
    trigger: row[7] as Trigger,
    tenantId: row[8] as string | null,
    metadata: metadata === null ? {} : JSON.parse(metadata),
    uniqueKey: row[10] as string | null,
    traceContext: row[11] as string | null,
    enqueuedAt: Number(row[12]),
    runAt: Number(row[13]),
    attemptedAt: claim.now,
    finishedAt: null,
    leaseToken: Number(row[14]),
    leaseExpiresAt: claim.leaseExpiresAt,
    workerId: claim.workerId,
    cancelRequested: false,
    errors: typeof errors === "string" ? (errors === "[]" ? [] : JSON.parse(errors)) : errors,
    result: null
  }
}

const claimOrder = (a: JobRecord, b: JobRecord) =>
  a.priority - b.priority || a.runAt - b.runAt || Number(a.id) - Number(b.id)

/** Job ids are integers in every SQL store; anything else names no job. */
const isJobId = (id: string) => /^\d{1,18}$/.test(id)

const settleRow = (settlement: Settlement, now: number): SettleRow => {
  const base = { id: settlement.id, token: settlement.token, give_back: 0, run_at: null, result: null, error: null }
  switch (settlement._tag) {
    case "Complete":
      return { ...base, state: "completed", result: settlement.result }
    case "Retry":
      return { ...base, state: "retryable", run_at: Math.ceil(settlement.runAt), error: settlement.error }
    case "Discard":
      return { ...base, state: "discarded", error: settlement.error }
    case "Cancel":
      return { ...base, state: "cancelled", error: { kind: "interrupted", at: now, message: settlement.reason } }
    case "Snooze":
      return { ...base, state: "scheduled", give_back: 1, run_at: Math.ceil(settlement.runAt) }
    case "Release":
      return { ...base, state: "available", give_back: 1, run_at: now }
  }
}

export const makeSqlStore = (dialect: Dialect) =>
  Effect.gen(function*() {
    const wakeups = yield* PubSub.unbounded<string>()
    const cancellations = yield* PubSub.unbounded<string>()
    const localWorkers = makeLocalWorkers()

    const op = <A>(name: string, effect: Effect.Effect<A, SqlError>): Effect.Effect<A, StoreError> =>
      Effect.mapError(effect, (cause) => new StoreError({ op: name, cause }))

    const wake = (queues: Iterable<string>) =>
      Effect.forEach(new Set(queues), (queue) => PubSub.publish(wakeups, queue), { discard: true })
    /**
     * Wake this process's workers for its own write, unless the listener will: while it listens,
     * the write's NOTIFY reaches it once committed, and waking here as well made a worker claim
     * twice (the second claim finding nothing, then asking for the next run-at): a quarter of the
     * claims of a producing and working process, measured. Inside a transaction, the NOTIFY is
     * also the right moment: a wake-up before the commit finds nothing to claim.
     *
     * `listenedBefore` is whether it listened when the write began: a listener that connects
     * while the write runs may have missed the write's NOTIFY.
     */
    let listening = false
    const wakeForOwnWrite = (listenedBefore: boolean, queues: Iterable<string>) =>
      listenedBefore ? Effect.void : wake(queues)
    /** New work in these queues that no insert trigger announces: tell the workers here and elsewhere. */
    const announce = (queues: ReadonlyArray<string>) =>
      Effect.suspend(() => {
        const listenedBefore = listening
        return Effect.zipRight(dialect.notifyWakeup([...new Set(queues)]), wakeForOwnWrite(listenedBefore, queues))
      })

    // Other processes' news (PostgreSQL): new work, cancellations, and after a reconnection a
    // wake-up for every queue, since anything sent while disconnected was lost. Listened to
    // while someone subscribes (a worker), on a fiber of the store's scope: a process that only
    // enqueues (an API, or one whose worker has stopped) holds no listening connection and reads
    // no notification of its own inserts.
    const storeScope = yield* Effect.scope
    const listenerLock = yield* Effect.makeSemaphore(1)
    let subscribers = 0
    let listener: Fiber.RuntimeFiber<void> | undefined
    // Subscribers do not wait for the connection (see `subscribe`); one slow to come is reported.
    const warnIfNotListening = Effect.sleep(Duration.seconds(5)).pipe(
      Effect.zipRight(Effect.suspend(() =>
        listening ? Effect.void : Effect.logWarning("not listening for notifications yet; polling meanwhile")
      ))
    )
    const listen = (signals: NonNullable<Dialect["signals"]>) => Effect.all([
      signals.pipe(
        Stream.runForEach((signal) => {
          switch (signal._tag) {
            case "Wakeup":
              return PubSub.publish(wakeups, signal.queue)
            case "Cancel":
              return PubSub.publish(cancellations, signal.id)
            case "Connected":
              listening = true
              return PubSub.publish(wakeups, "*")
            case "Disconnected":
              listening = false
              return Effect.void
          }
        }),
        Effect.ensuring(Effect.sync(() => {
          listening = false
        })),
        Effect.catchAllCause((cause) => Effect.logWarning("store signals stopped; workers fall back to polling", cause))
      ),
      warnIfNotListening
    ], { concurrency: "unbounded", discard: true }).pipe(
      Effect.annotateLogs({ module: "JobStore" }),
      // Started from an uninterruptible region: the fiber itself must stay interruptible.
      Effect.interruptible,
      Effect.forkIn(storeScope)
    )
    /** Counts the subscriber in; the first one starts listening. */
    const subscribed = listenerLock.withPermits(1)(Effect.suspend(() => {
      subscribers++
      if (dialect.signals === undefined || listener !== undefined) return Effect.void
      return Effect.map(listen(dialect.signals), (fiber) => {
        listener = fiber
      })
    }))
    const unsubscribed = listenerLock.withPermits(1)(Effect.suspend(() => {
      subscribers--
      if (subscribers > 0 || listener === undefined) return Effect.void
      const fiber = listener
      listener = undefined
      return Fiber.interrupt(fiber)
    }))
    /**
     * A subscription to one of the signals' topics for the caller's scope; the last one to end
     * stops listening. It does not wait for the listening connection: once connected, the
     * listener wakes every queue, and that covers whatever was enqueued before.
     */
    const subscribe = <A>(topic: PubSub.PubSub<A>) =>
      Effect.zipLeft(
        Effect.map(PubSub.subscribe(topic), (queue) => Stream.fromQueue(queue)),
        Effect.acquireRelease(subscribed, () => unsubscribed)
      )

    /**
     * Jobs for a worker of this process: inserted, those picked already claimed, and handed over,
     * in one round trip that is not interrupted halfway, or the worker would hold leases on jobs
     * it never got.
     */
    const insertForLocalWorker = (
      jobs: ReadonlyArray<JobInsert>,
      rows: ReadonlyArray<InsertRow>,
      local: LocalClaim,
      listenedBefore: boolean
    ) =>
      Effect.flatMap(drawTokenStep, (tokenStep) => {
        const stamp: ClaimStamp = { now: local.now, leaseExpiresAt: local.leaseExpiresAt, workerId: local.workerId, tokenStep }
        const picked = rows.map(() => false)
        for (const i of local.handed) picked[i] = true
        return dialect.insertClaimed(rows, picked, stamp).pipe(
          Effect.onError(() => Effect.sync(() => local.reservation.cancel())),
          Effect.flatMap(({ durable, rows: inserted }) => {
            const results: Array<InsertResult> = inserted.map(([id]) => ({ id: String(id), inserted: true }))
            const claimed = local.handed
              .filter((i) => inserted[i]![1] === "running")
              .map((i) => claimedRecord(jobs[i]!, results[i]!.id, stamp))
            // The rest wait for a claim, all of them if the queue is paused.
            const wakeForRest = claimed.length < jobs.length ? wakeForOwnWrite(listenedBefore, [jobs[0]!.queue]) : Effect.void
            // The worker has its jobs first; the caller hears of them once they are on disk.
            const answer = Effect.as(Effect.zipRight(wakeForRest, durable), results)
            if (claimed.length === 0) {
              local.reservation.cancel()
              return answer
            }
            return Effect.zipRight(local.reservation.take(claimed), answer)
          })
        )
      }).pipe(Effect.uninterruptible)

    const insert = (jobs: ReadonlyArray<JobInsert>): Effect.Effect<ReadonlyArray<InsertResult>, StoreError> =>
      jobs.length === 0 ? Effect.succeed([]) : Effect.mapError(
        // The clock and the context read in one step each, the local hand-over without a
        // generator: a single enqueue's latency is mostly such steps (see JobClient).
        Effect.clockWith((clock) =>
          Effect.contextWithEffect((context: Context.Context<never>) => {
            const listenedBefore = listening
            const now = clock.unsafeCurrentTimeMillis()
            const rows = insertRows(jobs)
            // Inside the caller's transaction the job may yet roll back: it waits for a claim.
            const local = Option.isSome(Context.getOption(context, TransactionConnection))
              ? undefined
              : localWorkers.claimFor(jobs, now)
            return local !== undefined
              ? insertForLocalWorker(jobs, rows, local, listenedBefore)
              : insertWaiting(jobs, rows, now, listenedBefore)
          })
        ),
        (cause) => new StoreError({ op: "insert", cause })
      )

    const insertRows = (jobs: ReadonlyArray<JobInsert>): Array<InsertRow> =>
      jobs.map((job, ord) => ({
        ord,
        name: job.name,
        queue: job.queue,
        payload: job.payload,
        priority: job.priority,
        max_attempts: job.maxAttempts,
        trigger: job.trigger,
        tenant_id: job.tenantId,
        metadata: job.metadata,
        unique_key: job.uniqueKey,
        trace_context: job.traceContext,
        // Columns hold whole milliseconds.
        run_at: Math.ceil(job.runAt)
      }))

    /** Jobs that wait for a claim. */
    const insertWaiting = (jobs: ReadonlyArray<JobInsert>, rows: ReadonlyArray<InsertRow>, now: number, listenedBefore: boolean) =>
      Effect.gen(function*() {
        // Inserted rows come back in input order; a row whose unique key was live (in the
        // database, or earlier in this batch) is skipped by the unique index and answered with
        // the live job instead.
        const inserted = yield* dialect.insert(rows, now)
        const insertedKeys = new Set(inserted.flatMap((row) => row.unique_key === null ? [] : [row.unique_key]))
        const results: Array<InsertResult | string> = []
        let next = 0
        for (const job of jobs) {
          if (job.uniqueKey === null || insertedKeys.delete(job.uniqueKey)) {
            results.push({ id: String(inserted[next++]!.id), inserted: true })
          } else {
            results.push(job.uniqueKey)
          }
        }
        const duplicateKeys = results.filter((r): r is string => typeof r === "string")
        const live = duplicateKeys.length === 0
          ? new Map<string, string>()
          : new Map((yield* dialect.liveByUniqueKey(duplicateKeys)).map((row) => [row.unique_key, String(row.id)]))
        yield* wakeForOwnWrite(listenedBefore, jobs.map((job) => job.queue))
        // A live job may finish between the two statements, freeing its key: then the job is
        // enqueued after all, as it would have been a moment later.
        const freed = duplicateKeys.filter((key) => !live.has(key))
        const late = new Map<string, string>()
        if (freed.length > 0) {
          const freedRows = rows.filter((row) => row.unique_key !== null && freed.includes(row.unique_key))
          for (const row of yield* dialect.insert(freedRows, now)) {
            if (row.unique_key !== null) late.set(row.unique_key, String(row.id))
          }
        }
        const answered: Array<InsertResult> = []
        const lateAnswered = new Set<string>()
        for (const r of results) {
          if (typeof r !== "string") answered.push(r)
          else if (live.has(r)) answered.push({ id: live.get(r)!, inserted: false })
          else if (late.has(r)) {
            // The first row with the key was inserted now; later ones in the batch are its duplicates.
            answered.push({ id: late.get(r)!, inserted: !lateAnswered.has(r) })
            lateAnswered.add(r)
          }
          else return yield* Effect.fail(new Error(`unique key ${JSON.stringify(r)} changed hands twice during one enqueue`))
        }
        return answered
      })

    const store: JobStoreShape = {
      insert,
      claim: (request) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const queues = request.queues.filter((slot) => slot.limit > 0)
          if (queues.length === 0) return { jobs: [], nextRunAt: null }
          const claim = {
            queues,
            now,
            leaseExpiresAt: now + Duration.toMillis(request.leaseDuration),
            workerId: request.workerId,
            tokenStep: yield* drawTokenStep
          }
          const rows = yield* dialect.claim(claim)
          if (rows.length > 0) {
            const jobs = rows.map((row) => toClaimedRecord(row, claim))
            return { jobs: jobs.sort(claimOrder), nextRunAt: null }
          }
          const nextRunAt = yield* dialect.nextRunAt(queues.map((slot) => slot.queue), now)
          return { jobs: [], nextRunAt }
        }).pipe(Effect.mapError((cause) => new StoreError({ op: "claim", cause }))),
      settle: (settlements) =>
        Effect.gen(function*() {
          if (settlements.length === 0) return []
          const now = yield* Clock.currentTimeMillis
          const completes: Array<CompleteRow> = []
          const deletes: Array<Lease> = []
          const others: Array<SettleRow> = []
          for (const s of settlements) {
            if (s._tag !== "Complete") others.push(settleRow(s, now))
            else if (s.keep === false) deletes.push({ id: s.id, token: s.token })
            else completes.push({ id: s.id, token: s.token, result: s.result })
          }
          // Completions answer their stale leases, other settlements the applied ones.
          const stale = new Set<string>()
          if (completes.length > 0) {
            for (const row of yield* dialect.complete(completes, now)) stale.add(`${row[0]}:${row[1]}`)
          }
          if (deletes.length > 0) {
            for (const row of yield* dialect.completeAndDelete(deletes)) stale.add(`${row[0]}:${row[1]}`)
          }
          if (others.length === 0 && stale.size === 0) return settlements.map(() => true)
          const applied = others.length > 0 ? yield* dialect.settle(others, now) : []
          const ids = new Set(applied.map((row) => `${row.id}:${row.lease_token}`))
          const released = applied.filter((row) => row.state === "available").map((row) => row.queue)
          if (released.length > 0) yield* announce(released)
          return settlements.map((s) =>
            s._tag === "Complete" ? !stale.has(`${s.id}:${s.token}`) : ids.has(`${s.id}:${s.token}`)
          )
        }).pipe(Effect.mapError((cause) => new StoreError({ op: "settle", cause }))),
      heartbeat: (leases, leaseDuration) =>
        Effect.gen(function*() {
          if (leases.length === 0) return { lost: [], cancelRequested: [] }
          const now = yield* Clock.currentTimeMillis
          const held = yield* dialect.heartbeat(leases, now + Duration.toMillis(leaseDuration))
          const stillHeld = new Set(held.map((row) => `${row.id}:${row.lease_token}`))
          return {
            lost: leases.filter((lease) => !stillHeld.has(`${lease.id}:${lease.token}`)).map((lease) => lease.id),
            cancelRequested: held.filter((row) => Boolean(row.cancel_requested)).map((row) => String(row.id))
          }
        }).pipe(Effect.mapError((cause) => new StoreError({ op: "heartbeat", cause }))),
      rescue: Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const rows = yield* dialect.rescue(now)
        return {
          retried: rows.filter((row) => row.state === "retryable").map((row) => String(row.id)),
          discarded: rows.filter((row) => row.state === "discarded").map((row) => String(row.id))
        }
      }).pipe(Effect.mapError((cause) => new StoreError({ op: "rescue", cause }))),
      get: (id) =>
        isJobId(id)
          ? op("get", Effect.map(dialect.get(id), (rows) => Option.map(Option.fromNullable(rows[0]), toRecord)))
          : Effect.succeed(Option.none()),
      list: (filter) => op("list", Effect.map(dialect.list(filter), (rows) => rows.map(toRecord))),
      counts: op(
        "counts",
        Effect.map(dialect.counts, (rows) =>
          rows.map((row) => ({ queue: row.queue, state: row.state as JobState, count: Number(row.count) })))
      ),
      finishedCounts: ({ bucketMillis, since }) =>
        op(
          "finishedCounts",
          Effect.map(dialect.finishedCounts(since, bucketMillis), (rows) =>
            rows.map((row) => ({
              bucket: Number(row.bucket),
              state: row.state as "completed" | "cancelled" | "discarded",
              count: Number(row.count)
            })))
        ),
      cancel: (id) =>
        Effect.gen(function*() {
          if (!isJobId(id)) return Option.none()
          const now = yield* Clock.currentTimeMillis
          const [row] = yield* dialect.cancel(id, now)
          if (row === undefined) return Option.map(Option.fromNullable((yield* dialect.get(id))[0]), toRecord)
          const job = toRecord(row)
          if (job.state === "running") {
            yield* PubSub.publish(cancellations, job.id)
            yield* dialect.notifyCancel(job.id)
          }
          return Option.some(job)
        }).pipe(Effect.mapError((cause) => new StoreError({ op: "cancel", cause }))),
      retry: (id) =>
        Effect.gen(function*() {
          if (!isJobId(id)) return Option.none()
          const now = yield* Clock.currentTimeMillis
          const [row] = yield* dialect.retry(id, now)
          if (row === undefined) return Option.map(Option.fromNullable((yield* dialect.get(id))[0]), toRecord)
          yield* announce([row.queue])
          return Option.some(toRecord(row))
        }).pipe(Effect.mapError((cause) => new StoreError({ op: "retry", cause }))),
      prune: ({ finishedBefore, limit }) =>
        op(
          "prune",
          dialect.prune({
            completed: finishedBefore.completed ?? null,
            cancelled: finishedBefore.cancelled ?? null,
            discarded: finishedBefore.discarded ?? null
          }, limit)
        ),
      setQueuePaused: (queue, paused) =>
        op(
          "setQueuePaused",
          Effect.zipRight(
            dialect.setQueuePaused(queue, paused),
            paused ? Effect.void : announce([queue])
          )
        ),
      pausedQueues: op("pausedQueues", dialect.pausedQueues),
      enqueueCronTick: (tick: CronTick) =>
        dialect.withTransaction(Effect.gen(function*() {
          const won = yield* dialect.advanceCronTick(tick.schedule, tick.tick)
          if (!won) return Option.none()
          const [result] = yield* insert([tick.job])
          return Option.some(result!)
        })).pipe(Effect.mapError((cause) => cause instanceof StoreError ? cause : new StoreError({ op: "enqueueCronTick", cause }))),
      cronLastTicks: op(
        "cronLastTicks",
        Effect.map(dialect.cronLastTicks, (rows) => rows.map((row) => ({ schedule: row.schedule, tick: Number(row.tick) })))
      ),
      subscribeWakeups: subscribe(wakeups),
      subscribeCancellations: subscribe(cancellations),
      registerLocalWorker: localWorkers.register
    }
    return store
  })

