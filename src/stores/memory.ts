import { Clock, Duration, Effect, Option, PubSub, Stream } from "effect"
import type {
  AttemptError,
  ClaimRequest,
  ClaimResult,
  CronTick,
  FinishedCount,
  FinishedCountsRequest,
  PruneRequest,
  HeartbeatResult,
  InsertResult,
  JobFilter,
  JobInsert,
  JobRecord,
  JobState,
  JobStoreShape,
  Lease,
  QueueCount,
  RescueResult,
  Settlement
} from "../JobStore.js"
import { makeLocalWorkers } from "../internal/localWorkers.js"

type Mutable<T> = { -readonly [K in keyof T]: T[K] }
type Row = Mutable<Omit<JobRecord, "errors">> & { errors: Array<AttemptError> }

const isActive = (state: JobState) =>
  state === "scheduled" || state === "available" || state === "running" || state === "retryable"

/** Priority (lower first), then run-at, then insertion order: the order every store claims in. */
const claimOrder = (a: Row, b: Row) => a.priority - b.priority || a.runAt - b.runAt || Number(a.id) - Number(b.id)

/** Rows are copied in and out, so callers never share mutable state with the store. */
const snapshot = (row: Row): JobRecord => ({ ...row, errors: [...row.errors] })

export const makeMemoryStore = Effect.gen(function*() {
  const rows = new Map<string, Row>()
  const liveUniqueKeys = new Map<string, string>()
  const paused = new Set<string>()
  const lastTicks = new Map<string, number>()
  let nextId = 1
  const wakeups = yield* PubSub.unbounded<string>()
  const cancellations = yield* PubSub.unbounded<string>()
  const localWorkers = makeLocalWorkers()

  const now = Clock.currentTimeMillis

  const finish = (row: Row, state: JobState, at: number) => {
    row.state = state
    row.finishedAt = at
    row.leaseExpiresAt = null
    if (row.uniqueKey !== null) liveUniqueKeys.delete(row.uniqueKey)
  }

  const insert = (jobs: ReadonlyArray<JobInsert>) =>
    Effect.flatMap(now, (at) => {
      const local = localWorkers.claimFor(jobs, at)
      const results: Array<InsertResult> = []
      const queues = new Set<string>()
      for (const job of jobs) {
        const existing = job.uniqueKey === null ? undefined : liveUniqueKeys.get(job.uniqueKey)
        if (existing !== undefined) {
          results.push({ id: existing, inserted: false })
          continue
        }
        const id = String(nextId++)
        rows.set(id, {
          id,
          name: job.name,
          queue: job.queue,
          state: job.runAt > at ? "scheduled" : "available",
          payload: job.payload,
          priority: job.priority,
          attempt: 0,
          maxAttempts: job.maxAttempts,
          trigger: job.trigger,
          tenantId: job.tenantId,
          metadata: job.metadata === null ? {} : JSON.parse(job.metadata),
          uniqueKey: job.uniqueKey,
          traceContext: job.traceContext,
          enqueuedAt: at,
          runAt: job.runAt,
          attemptedAt: null,
          finishedAt: null,
          leaseToken: 0,
          leaseExpiresAt: null,
          workerId: null,
          cancelRequested: false,
          errors: [],
          result: null
        })
        if (job.uniqueKey !== null) liveUniqueKeys.set(job.uniqueKey, id)
        results.push({ id, inserted: true })
        queues.add(job.queue)
      }
      const wake = Effect.forEach(queues, (queue) => PubSub.publish(wakeups, queue), { discard: true })
      if (local !== undefined) {
        // Jobs due now, without unique keys (so each was inserted): the picked ones claimed for
        // the local worker at once, as the SQL stores do in the inserting statement.
        if (paused.has(jobs[0]!.queue)) {
          local.reservation.cancel()
        } else {
          const taken: Array<JobRecord> = []
          for (const i of local.handed) {
            const row = rows.get(results[i]!.id)!
            row.state = "running"
            row.attempt = 1
            row.attemptedAt = at
            row.leaseToken = 1
            row.leaseExpiresAt = local.leaseExpiresAt
            row.workerId = local.workerId
            taken.push(snapshot(row))
          }
          const rest = taken.length < results.length ? wake : Effect.void
          return Effect.as(Effect.zipRight(local.reservation.take(taken), rest), results)
        }
      }
      return Effect.as(wake, results)
    })

  const claim = (request: ClaimRequest) =>
    Effect.map(now, (at): ClaimResult => {
      const jobs: Array<JobRecord> = []
      const leaseMs = Duration.toMillis(request.leaseDuration)
      let nextRunAt: number | null = null
      for (const { limit, queue } of request.queues) {
        if (limit <= 0 || paused.has(queue)) continue
        const waiting = [...rows.values()].filter((row) =>
          row.queue === queue && (row.state === "available" || row.state === "scheduled" || row.state === "retryable")
        )
        const due = waiting.filter((row) => row.runAt <= at).sort(claimOrder)
        for (const row of due.slice(0, limit)) {
          row.state = "running"
          row.attempt += 1
          row.attemptedAt = at
          row.leaseToken += 1
          row.leaseExpiresAt = at + leaseMs
          row.workerId = request.workerId
          jobs.push(snapshot(row))
        }
        if (jobs.length === 0) {
          for (const row of waiting) {
            if (row.runAt > at && (nextRunAt === null || row.runAt < nextRunAt)) nextRunAt = row.runAt
          }
        }
      }
      return { jobs, nextRunAt: jobs.length === 0 ? nextRunAt : null }
    })

  const holds = (row: Row | undefined, token: number): row is Row =>
    row !== undefined && row.state === "running" && row.leaseToken === token

  const settleOne = (settlement: Settlement, at: number): boolean => {
    const row = rows.get(settlement.id)
    if (!holds(row, settlement.token)) return false
    switch (settlement._tag) {
      case "Complete":
        row.result = settlement.result
        finish(row, "completed", at)
        if (settlement.keep === false) rows.delete(row.id)
        break
      case "Discard":
        row.errors.push(settlement.error)
        finish(row, "discarded", at)
        break
      case "Cancel":
        row.errors.push({ attempt: row.attempt, at, kind: "interrupted", message: settlement.reason })
        finish(row, "cancelled", at)
        break
      case "Retry":
        row.errors.push(settlement.error)
        row.state = "retryable"
        row.runAt = settlement.runAt
        row.leaseExpiresAt = null
        break
      case "Snooze":
        row.state = "scheduled"
        row.attempt -= 1
        row.runAt = settlement.runAt
        row.leaseExpiresAt = null
        break
      case "Release":
        row.state = "available"
        row.attempt -= 1
        row.runAt = at
        row.leaseExpiresAt = null
        break
    }
    row.workerId = null
    return true
  }

  const settle = (settlements: ReadonlyArray<Settlement>) =>
    Effect.flatMap(now, (at) => {
      const results = settlements.map((settlement) => settleOne(settlement, at))
      const woken = new Set(
        settlements.filter((s, i) => results[i] && s._tag === "Release").map((s) => rows.get(s.id)!.queue)
      )
      return Effect.as(Effect.forEach(woken, (queue) => PubSub.publish(wakeups, queue), { discard: true }), results)
    })

  const heartbeat = (leases: ReadonlyArray<Lease>, leaseDuration: Duration.Duration) =>
    Effect.map(now, (at): HeartbeatResult => {
      const lost: Array<string> = []
      const cancelRequested: Array<string> = []
      for (const lease of leases) {
        const row = rows.get(lease.id)
        if (!holds(row, lease.token)) {
          lost.push(lease.id)
          continue
        }
        row.leaseExpiresAt = at + Duration.toMillis(leaseDuration)
        if (row.cancelRequested) cancelRequested.push(lease.id)
      }
      return { lost, cancelRequested }
    })

  const rescue = Effect.map(now, (at): RescueResult => {
    const retried: Array<string> = []
    const discarded: Array<string> = []
    for (const row of rows.values()) {
      if (row.state !== "running" || row.leaseExpiresAt === null || row.leaseExpiresAt > at) continue
      row.errors.push({ attempt: row.attempt, at, kind: "lease-expired", message: "lease expired: the worker stopped heartbeating" })
      row.workerId = null
      if (row.cancelRequested) {
        finish(row, "cancelled", at)
      } else if (row.attempt >= row.maxAttempts) {
        finish(row, "discarded", at)
        discarded.push(row.id)
      } else {
        row.state = "retryable"
        row.runAt = at
        row.leaseExpiresAt = null
        retried.push(row.id)
      }
    }
    return { retried, discarded }
  })

  const get = (id: string) => Effect.sync(() => Option.map(Option.fromNullable(rows.get(id)), snapshot))

  const list = (filter: JobFilter) =>
    Effect.sync(() => {
      const matching = [...rows.values()]
        .filter((row) =>
          (filter.queue === undefined || row.queue === filter.queue) &&
          (filter.state === undefined || row.state === filter.state) &&
          (filter.name === undefined || row.name === filter.name)
        )
        .sort((a, b) => Number(b.id) - Number(a.id))
      const offset = filter.offset ?? 0
      return matching.slice(offset, offset + (filter.limit ?? 100)).map(snapshot)
    })

  const counts = Effect.sync(() => {
    const byKey = new Map<string, QueueCount>()
    for (const row of rows.values()) {
      const key = `${row.queue}\u0000${row.state}`
      const current = byKey.get(key)
      byKey.set(key, { queue: row.queue, state: row.state, count: (current?.count ?? 0) + 1 })
    }
    return [...byKey.values()]
  })

  const finishedCounts = (request: FinishedCountsRequest) =>
    Effect.sync(() => {
      const byKey = new Map<string, FinishedCount>()
      for (const row of rows.values()) {
        if (row.finishedAt === null || row.finishedAt < request.since) continue
        if (row.state !== "completed" && row.state !== "cancelled" && row.state !== "discarded") continue
        const bucket = Math.floor(row.finishedAt / request.bucketMillis) * request.bucketMillis
        const key = `${bucket}\u0000${row.state}`
        byKey.set(key, { bucket, state: row.state, count: (byKey.get(key)?.count ?? 0) + 1 })
      }
      return [...byKey.values()]
    })

  const cancel = (id: string) =>
    Effect.flatMap(now, (at) => {
      const row = rows.get(id)
      if (row === undefined) return Effect.succeed(Option.none())
      if (row.state === "running") {
        row.cancelRequested = true
        return Effect.as(PubSub.publish(cancellations, id), Option.some(snapshot(row)))
      }
      if (isActive(row.state)) finish(row, "cancelled", at)
      return Effect.succeed(Option.some(snapshot(row)))
    })

  const retry = (id: string) =>
    Effect.flatMap(now, (at) => {
      const row = rows.get(id)
      if (row === undefined) return Effect.succeed(Option.none())
      if (row.state === "running" || row.state === "completed") return Effect.succeed(Option.some(snapshot(row)))
      if (row.uniqueKey !== null && !isActive(row.state)) {
        const holder = liveUniqueKeys.get(row.uniqueKey)
        if (holder !== undefined && holder !== id) return Effect.succeed(Option.some(snapshot(row)))
        liveUniqueKeys.set(row.uniqueKey, id)
      }
      row.state = "available"
      row.runAt = at
      row.finishedAt = null
      row.cancelRequested = false
      row.maxAttempts = Math.max(row.maxAttempts, row.attempt + 1)
      return Effect.as(PubSub.publish(wakeups, row.queue), Option.some(snapshot(row)))
    })

  const prune = (request: PruneRequest) =>
    Effect.sync(() => {
      let deleted = 0
      for (const row of rows.values()) {
        if (deleted >= request.limit) break
        const before = row.state === "completed" || row.state === "cancelled" || row.state === "discarded"
          ? request.finishedBefore[row.state]
          : undefined
        if (before !== undefined && row.finishedAt !== null && row.finishedAt < before) {
          rows.delete(row.id)
          deleted++
        }
      }
      return deleted
    })

  const setQueuePaused = (queue: string, pause: boolean) =>
    Effect.suspend(() => {
      if (!pause) {
        paused.delete(queue)
        return PubSub.publish(wakeups, queue)
      }
      paused.add(queue)
      return Effect.void
    })

  const enqueueCronTick = (tick: CronTick) =>
    Effect.suspend(() => {
      const last = lastTicks.get(tick.schedule)
      if (last !== undefined && last >= tick.tick) return Effect.succeed(Option.none())
      lastTicks.set(tick.schedule, tick.tick)
      return Effect.map(insert([tick.job]), (results) => Option.some(results[0]!))
    })

  return {
    prune,
    setQueuePaused,
    pausedQueues: Effect.sync(() => [...paused]),
    enqueueCronTick,
    cronLastTicks: Effect.sync(() => [...lastTicks].map(([schedule, tick]) => ({ schedule, tick }))),
    insert,
    claim,
    settle,
    heartbeat,
    rescue,
    get,
    list,
    counts,
    finishedCounts,
    cancel,
    retry,
    subscribeWakeups: Effect.map(PubSub.subscribe(wakeups), (queue) => Stream.fromQueue(queue)),
    subscribeCancellations: Effect.map(PubSub.subscribe(cancellations), (queue) => Stream.fromQueue(queue)),
    registerLocalWorker: localWorkers.register
  } satisfies JobStoreShape
})
