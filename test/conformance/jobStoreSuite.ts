/**
 * The job store conformance suite: one set of behaviours every store must have, run against
 * each of them. Tests share one store per suite; each uses queues of its own, and time is
 * TestClock-driven (never slept).
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, type Layer, Option, Stream, TestClock } from "effect"
import { type FinishedCount, type JobInsert, type JobRecord, JobStore, Settlement } from "conveyor"

/** A fixed, realistic starting time for every test. */
export const t0 = Date.UTC(2026, 0, 1, 12, 0, 0)

let queueCounter = 0
/** A queue name no other test uses. */
export const freshQueue = (label: string) => `${label}-${process.pid}-${Date.now().toString(36)}-${queueCounter++}`

export const insertOf = (queue: string, overrides: Partial<JobInsert> = {}): JobInsert => ({
  name: "job",
  queue,
  payload: JSON.stringify({ n: 1 }),
  priority: 0,
  maxAttempts: 3,
  runAt: t0,
  trigger: "queue",
  tenantId: null,
  metadata: null,
  uniqueKey: null,
  traceContext: null,
  ...overrides
})

const lease = { leaseDuration: Duration.seconds(30) }
const leaseOf = (job: JobRecord) => ({ id: job.id, token: job.leaseToken })

export const jobStoreSuite = (name: string, storeLayer: Layer.Layer<JobStore, unknown>) =>
  describe(`JobStore conformance: ${name}`, () => {
    it.layer(storeLayer, { timeout: 60_000 })((it) => {
      const setup = Effect.gen(function*() {
        yield* TestClock.setTime(t0)
        return yield* JobStore
      })
      const claimAll = (store: JobStore["Type"], queue: string, limit = 100) =>
        Effect.map(store.claim({ workerId: "w1", queues: [{ queue, limit }], ...lease }), (result) => result.jobs)
      const insertOne = (store: JobStore["Type"], job: JobInsert) =>
        Effect.map(store.insert([job]), (results) => results[0]!.id)
      const get = (store: JobStore["Type"], id: string) => Effect.map(store.get(id), Option.getOrThrow)

      it.effect("stores an inserted job as available, or scheduled when its run-at is ahead", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("insert")
          const [now, later] = yield* store.insert([
            insertOf(queue, {
              tenantId: "ws-1",
              metadata: JSON.stringify({ source: "test" }),
              traceContext: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            }),
            insertOf(queue, { runAt: t0 + 60_000 })
          ])
          expect(now!.inserted).toBe(true)
          const job = yield* get(store, now!.id)
          expect(job).toMatchObject({
            name: "job",
            queue,
            state: "available",
            attempt: 0,
            maxAttempts: 3,
            trigger: "queue",
            tenantId: "ws-1",
            metadata: { source: "test" },
            traceContext: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            enqueuedAt: t0,
            runAt: t0,
            errors: []
          })
          expect(JSON.parse(job.payload)).toEqual({ n: 1 })
          expect((yield* get(store, later!.id)).state).toBe("scheduled")
          expect(yield* store.get("999999999")).toEqual(Option.none())
        }))

      it.effect("claims by priority, then run-at, then insertion order, up to the limit", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("order")
          const ids = yield* Effect.forEach(
            [
              { priority: 5, runAt: t0 - 1000 },
              { priority: 0, runAt: t0 - 1000 },
              { priority: 0, runAt: t0 - 5000 },
              { priority: 0, runAt: t0 - 5000 },
              { priority: -1, runAt: t0 + 1000 }
            ],
            (o) => insertOne(store, insertOf(queue, o))
          )
          const first = yield* claimAll(store, queue, 3)
          expect(first.map((job) => job.id)).toEqual([ids[2], ids[3], ids[1]])
          expect(first.every((job) => job.state === "running" && job.attempt === 1 && job.workerId === "w1")).toBe(true)
          expect(first[0]!.leaseExpiresAt).toBe(t0 + 30_000)
          const rest = yield* claimAll(store, queue)
          expect(rest.map((job) => job.id)).toEqual([ids[0]])
          const short = yield* store.claim({ workerId: "w1", queues: [{ queue, limit: 10 }], ...lease })
          expect(short).toEqual({ jobs: [], nextRunAt: t0 + 1000 })
          yield* TestClock.adjust("1 second")
          expect((yield* claimAll(store, queue)).map((job) => job.id)).toEqual([ids[4]])
        }))

      it.effect("claims only from the queues asked for", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const a = freshQueue("qa")
          const b = freshQueue("qb")
          yield* store.insert([insertOf(a), insertOf(b), insertOf(b)])
          const claimed = yield* store.claim({ workerId: "w1", queues: [{ queue: b, limit: 1 }, { queue: a, limit: 0 }], ...lease })
          expect(claimed.jobs.map((job) => job.queue)).toEqual([b])
        }))

      it.effect("gives each job to one claimer only, however many claim at once", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("exclusive")
          yield* store.insert(Array.from({ length: 200 }, () => insertOf(queue)))
          const batches = yield* Effect.all(
            Array.from({ length: 8 }, (_, i) =>
              store.claim({ workerId: `w${i}`, queues: [{ queue, limit: 40 }], ...lease })),
            { concurrency: "unbounded" }
          )
          const ids = batches.flatMap((batch) => batch.jobs).map((job) => job.id)
          expect(ids.length).toBe(200)
          expect(new Set(ids).size).toBe(200)
        }))

      it.effect("completes a job once; a stale fencing token is rejected", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("complete")
          const id = yield* insertOne(store, insertOf(queue))
          const [job] = yield* claimAll(store, queue)
          yield* TestClock.adjust("5 seconds")
          expect(yield* store.settle([Settlement.Complete({ ...leaseOf(job!), result: "42" })])).toEqual([true])
          const done = yield* get(store, id)
          expect(done).toMatchObject({ state: "completed", finishedAt: t0 + 5000, result: "42", leaseExpiresAt: null })
          expect(yield* store.settle([Settlement.Complete({ ...leaseOf(job!), result: null })])).toEqual([false])
        }))

      it.effect("completes with keep: false by deleting the job, fenced like any settlement; frees its unique key", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("complete-delete")
          const key = `${queue}:once`
          const [kept, dropped, stale] = yield* store.insert([
            insertOf(queue),
            insertOf(queue, { uniqueKey: key }),
            insertOf(queue)
          ])
          const claimed = yield* claimAll(store, queue)
          const byId = new Map(claimed.map((job) => [job.id, job]))
          const staleLease = { ...leaseOf(byId.get(stale!.id)!), token: byId.get(stale!.id)!.leaseToken + 1 }
          expect(yield* store.settle([
            Settlement.Complete({ ...leaseOf(byId.get(kept!.id)!), result: "1" }),
            Settlement.Complete({ ...leaseOf(byId.get(dropped!.id)!), result: "2", keep: false }),
            Settlement.Complete({ ...staleLease, result: null, keep: false })
          ])).toEqual([true, true, false])
          expect((yield* get(store, kept!.id)).state).toBe("completed")
          expect(yield* store.get(dropped!.id)).toEqual(Option.none())
          // A stale lease deletes nothing: the job still runs under its current claim.
          expect((yield* get(store, stale!.id)).state).toBe("running")
          expect(yield* store.settle([Settlement.Complete({ ...leaseOf(byId.get(dropped!.id)!), result: null, keep: false })]))
            .toEqual([false])
          const counts = (yield* store.counts).filter((c) => c.queue === queue)
          expect(counts.reduce((n, c) => n + c.count, 0)).toBe(2)
          const [again] = yield* store.insert([insertOf(queue, { uniqueKey: key })])
          expect(again!.inserted).toBe(true)
        }))

      it.effect("answers each settlement of a mixed batch: completions and others, applied or stale", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("mixed-settle")
          yield* store.insert(Array.from({ length: 5 }, () => insertOf(queue)))
          const [a, b, c, d, e] = yield* claimAll(store, queue)
          const stale = (job: JobRecord) => ({ ...leaseOf(job), token: job.leaseToken + 1 })
          expect(yield* store.settle([
            Settlement.Complete({ ...stale(a!), result: null }),
            Settlement.Release(leaseOf(b!)),
            Settlement.Complete({ ...leaseOf(c!), result: null, keep: false }),
            Settlement.Release(stale(d!)),
            Settlement.Complete({ ...leaseOf(e!), result: "5" })
          ])).toEqual([false, true, true, false, true])
          expect((yield* get(store, a!.id)).state).toBe("running")
          expect((yield* get(store, b!.id)).state).toBe("available")
          expect(yield* store.get(c!.id)).toEqual(Option.none())
          expect((yield* get(store, d!.id)).state).toBe("running")
          expect(yield* get(store, e!.id)).toMatchObject({ state: "completed", result: "5" })
        }))

      it.effect("a worker that lost its lease cannot settle, nor extend it", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("fencing")
          const id = yield* insertOne(store, insertOf(queue))
          const [stale] = yield* claimAll(store, queue)
          yield* TestClock.adjust("31 seconds")
          const rescued = yield* store.rescue
          expect(rescued.retried).toContain(id)
          const [fresh] = yield* claimAll(store, queue)
          expect(fresh!.leaseToken).not.toBe(stale!.leaseToken)
          expect(fresh!.attempt).toBe(2)
          const beat = yield* store.heartbeat([leaseOf(stale!), leaseOf(fresh!)], Duration.seconds(30))
          expect(beat.lost).toEqual([id])
          expect(yield* store.settle([
            Settlement.Complete({ ...leaseOf(stale!), result: null }),
            Settlement.Complete({ ...leaseOf(fresh!), result: null })
          ])).toEqual([false, true])
        }))

      it.effect("retries: retryable until its run-at, with the error kept; then claimable again", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("retry")
          const id = yield* insertOne(store, insertOf(queue))
          const [job] = yield* claimAll(store, queue)
          const error = { attempt: 1, at: t0, kind: "failure" as const, message: "boom", error: { code: 7 } }
          expect(yield* store.settle([Settlement.Retry({ ...leaseOf(job!), runAt: t0 + 10_000, error })])).toEqual([true])
          const waiting = yield* get(store, id)
          expect(waiting).toMatchObject({ state: "retryable", runAt: t0 + 10_000, attempt: 1 })
          expect(waiting.errors).toEqual([error])
          expect(yield* claimAll(store, queue)).toEqual([])
          yield* TestClock.adjust("10 seconds")
          const [again] = yield* claimAll(store, queue)
          expect(again).toMatchObject({ id, attempt: 2, state: "running" })
        }))

      it.effect("discards, cancels, snoozes and releases", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("outcomes")
          const ids = yield* Effect.forEach([1, 2, 3, 4], () => insertOne(store, insertOf(queue)))
          const claimed = yield* claimAll(store, queue)
          const byId = new Map(claimed.map((job) => [job.id, job]))
          const l = (i: number) => leaseOf(byId.get(ids[i]!)!)
          const error = { attempt: 1, at: t0, kind: "invalid-payload" as const, message: "bad" }
          expect(yield* store.settle([
            Settlement.Discard({ ...l(0), error }),
            Settlement.Cancel({ ...l(1), reason: "not needed" }),
            Settlement.Snooze({ ...l(2), runAt: t0 + 60_000 }),
            Settlement.Release(l(3))
          ])).toEqual([true, true, true, true])
          const [discarded, cancelled, snoozed, released] = yield* Effect.forEach(ids, (id) => get(store, id))
          expect(discarded).toMatchObject({ state: "discarded", errors: [error] })
          expect(discarded!.finishedAt).toBe(t0)
          expect(cancelled!.state).toBe("cancelled")
          expect(snoozed).toMatchObject({ state: "scheduled", attempt: 0, runAt: t0 + 60_000 })
          expect(released).toMatchObject({ state: "available", attempt: 0 })
          expect((yield* claimAll(store, queue)).map((job) => job.id)).toEqual([ids[3]])
        }))

      it.effect("heartbeats extend leases and report cancellation requests", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("heartbeat")
          const [a, b] = yield* store.insert([insertOf(queue), insertOf(queue)])
          const claimed = yield* claimAll(store, queue)
          yield* TestClock.adjust("20 seconds")
          yield* store.cancel(b!.id)
          const beat = yield* store.heartbeat(claimed.map(leaseOf), Duration.seconds(30))
          expect(beat).toEqual({ lost: [], cancelRequested: [b!.id] })
          expect((yield* get(store, a!.id)).leaseExpiresAt).toBe(t0 + 50_000)
          yield* TestClock.adjust("20 seconds")
          const rescued = yield* store.rescue
          expect(rescued.retried).not.toContain(a!.id)
          expect((yield* get(store, a!.id)).state).toBe("running")
        }))

      it.effect("rescues expired leases: retryable with attempts left, discarded without", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("rescue")
          const [once, twice] = yield* store.insert([insertOf(queue, { maxAttempts: 1 }), insertOf(queue, { maxAttempts: 2 })])
          yield* claimAll(store, queue)
          yield* TestClock.adjust("29 seconds")
          const early = yield* store.rescue
          expect(early.retried).not.toContain(twice!.id)
          yield* TestClock.adjust("2 seconds")
          const rescued = yield* store.rescue
          expect(rescued.discarded).toContain(once!.id)
          expect(rescued.retried).toContain(twice!.id)
          const discarded = yield* get(store, once!.id)
          expect(discarded.state).toBe("discarded")
          expect(discarded.errors.map((e) => e.kind)).toEqual(["lease-expired"])
          expect(yield* get(store, twice!.id)).toMatchObject({ state: "retryable", workerId: null })
        }))

      it.effect("deduplicates on a live unique key, and frees the key once the job is finished", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("unique")
          const key = `${queue}:report`
          const [first, second, other] = yield* store.insert([
            insertOf(queue, { uniqueKey: key }),
            insertOf(queue, { uniqueKey: key }),
            insertOf(queue, { uniqueKey: `${key}-other` })
          ])
          expect(first!.inserted).toBe(true)
          expect(second).toEqual({ id: first!.id, inserted: false })
          expect(other!.inserted).toBe(true)
          const [again] = yield* store.insert([insertOf(queue, { uniqueKey: key })])
          expect(again).toEqual({ id: first!.id, inserted: false })
          const claimed = yield* claimAll(store, queue)
          yield* store.settle(claimed.map((job) => Settlement.Complete({ ...leaseOf(job), result: null })))
          const [fresh] = yield* store.insert([insertOf(queue, { uniqueKey: key })])
          expect(fresh!.inserted).toBe(true)
          expect(fresh!.id).not.toBe(first!.id)
        }))

      it.scoped("cancels a waiting job at once, flags a running one, leaves a finished one", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("cancel")
          const cancellations = yield* store.subscribeCancellations
          const cancelled = yield* Effect.fork(Stream.runCollect(Stream.take(cancellations, 1)))
          const waiting = yield* insertOne(store, insertOf(queue, { runAt: t0 + 60_000 }))
          const running = yield* insertOne(store, insertOf(queue))
          yield* claimAll(store, queue)
          expect(Option.getOrThrow(yield* store.cancel(waiting)).state).toBe("cancelled")
          const flagged = Option.getOrThrow(yield* store.cancel(running))
          expect(flagged).toMatchObject({ state: "running", cancelRequested: true })
          expect(Chunk.toReadonlyArray(yield* Fiber.join(cancelled))).toEqual([running])
          expect(yield* store.cancel("424242424")).toEqual(Option.none())
          expect((yield* get(store, waiting)).state).toBe("cancelled")
        }))

      it.effect("retries a discarded or cancelled job on request", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("manual-retry")
          const id = yield* insertOne(store, insertOf(queue, { maxAttempts: 1 }))
          const [job] = yield* claimAll(store, queue)
          yield* store.settle([
            Settlement.Discard({ ...leaseOf(job!), error: { attempt: 1, at: t0, kind: "failure", message: "x" } })
          ])
          const retried = Option.getOrThrow(yield* store.retry(id))
          expect(retried).toMatchObject({ state: "available", maxAttempts: 2, finishedAt: null })
          const [again] = yield* claimAll(store, queue)
          expect(again).toMatchObject({ id, attempt: 2 })
        }))

      it.effect("lists newest first with filters, and counts by queue and state", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("list")
          const [a, b, c] = yield* store.insert([
            insertOf(queue, { name: "alpha" }),
            insertOf(queue, { name: "beta" }),
            insertOf(queue, { name: "alpha", runAt: t0 + 1000 })
          ])
          expect((yield* store.list({ queue })).map((job) => job.id)).toEqual([c!.id, b!.id, a!.id])
          expect((yield* store.list({ queue, name: "alpha" })).map((job) => job.id)).toEqual([c!.id, a!.id])
          expect((yield* store.list({ queue, state: "scheduled" })).map((job) => job.id)).toEqual([c!.id])
          expect((yield* store.list({ queue, limit: 1, offset: 1 })).map((job) => job.id)).toEqual([b!.id])
          const counts = (yield* store.counts).filter((row) => row.queue === queue)
          expect(counts.sort((x, y) => x.state.localeCompare(y.state))).toEqual([
            { queue, state: "available", count: 2 },
            { queue, state: "scheduled", count: 1 }
          ])
        }))

      it.effect("counts finished jobs per final state and time bucket", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("finished")
          // Counts are store-wide: far from other tests' times, and compared before and after.
          const start = t0 + 400 * 86_400_000
          yield* TestClock.setTime(start + 10_000)
          const minute = 60_000
          const request = { since: start, bucketMillis: minute }
          const ofBucket = (rows: ReadonlyArray<FinishedCount>, bucket: number, state: FinishedCount["state"]) =>
            rows.find((row) => row.bucket === bucket && row.state === state)?.count ?? 0
          const before = yield* store.finishedCounts(request)
          const ids = (yield* store.insert(Array.from({ length: 4 }, () => insertOf(queue, { runAt: start })))).map((r) => r.id)
          const claimed = yield* claimAll(store, queue)
          const l = (id: string) => leaseOf(claimed.find((job) => job.id === id)!)
          const error = { attempt: 1, at: start, kind: "failure" as const, message: "x" }
          yield* store.settle([
            Settlement.Complete({ ...l(ids[0]!), result: null }),
            Settlement.Discard({ ...l(ids[1]!), error })
          ])
          yield* TestClock.adjust("2 minutes")
          yield* store.settle([
            Settlement.Complete({ ...l(ids[2]!), result: null }),
            Settlement.Retry({ ...l(ids[3]!), runAt: start + 3_600_000, error })
          ])
          const after = yield* store.finishedCounts(request)
          const delta = (bucket: number, state: FinishedCount["state"]) =>
            ofBucket(after, bucket, state) - ofBucket(before, bucket, state)
          expect(delta(start, "completed")).toBe(1)
          expect(delta(start, "discarded")).toBe(1)
          expect(delta(start + 2 * minute, "completed")).toBe(1)
          expect(delta(start + 2 * minute, "discarded")).toBe(0)
          for (const row of after) expect(row.bucket % minute).toBe(0)
          const later = yield* store.finishedCounts({ since: start + minute, bucketMillis: minute })
          expect(ofBucket(later, start, "completed")).toBe(0)
        }))

      it.effect("prunes finished jobs older than their state's age, in batches", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("prune")
          const ids = (yield* store.insert(Array.from({ length: 5 }, () => insertOf(queue)))).map((r) => r.id)
          const claimed = yield* claimAll(store, queue)
          const l = (id: string) => leaseOf(claimed.find((job) => job.id === id)!)
          const error = { attempt: 1, at: t0, kind: "failure" as const, message: "x" }
          yield* store.settle([
            Settlement.Complete({ ...l(ids[0]!), result: null }),
            Settlement.Complete({ ...l(ids[1]!), result: null }),
            Settlement.Discard({ ...l(ids[2]!), error })
          ])
          yield* TestClock.adjust("1 hour")
          yield* store.settle([Settlement.Complete({ ...l(ids[3]!), result: null })])
          const now = t0 + 3_600_000
          // ids[0..1] completed an hour ago, ids[2] discarded an hour ago, ids[3] completed now, ids[4] running
          // Pruning is store-wide: other tests' finished jobs may go too, so look at ours.
          const exists = (id: string) => Effect.map(store.get(id), Option.isSome)
          expect(yield* store.prune({ finishedBefore: { completed: now - 60_000 }, limit: 1 })).toBe(1)
          while ((yield* store.prune({ finishedBefore: { completed: now - 60_000 }, limit: 2 })) > 0) {
            // in batches until nothing is left
          }
          expect(yield* Effect.forEach(ids, exists)).toEqual([false, false, true, true, true])
          expect(yield* store.prune({ finishedBefore: { discarded: now }, limit: 100 })).toBeGreaterThanOrEqual(1)
          const left = (yield* store.list({ queue })).map((job) => job.id).sort()
          expect(left).toEqual([ids[3]!, ids[4]!].sort())
        }))

      it.effect("skips paused queues when claiming, and resumes them", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("paused")
          yield* store.insert([insertOf(queue)])
          yield* store.setQueuePaused(queue, true)
          expect(yield* store.pausedQueues).toContain(queue)
          expect(yield* claimAll(store, queue)).toEqual([])
          yield* store.setQueuePaused(queue, false)
          expect(yield* store.pausedQueues).not.toContain(queue)
          expect((yield* claimAll(store, queue)).length).toBe(1)
        }))

      it.effect("enqueues each cron tick once, however many workers race for it", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("cron")
          const schedule = `${queue}-every-minute`
          const tick = t0 + 60_000
          const results = yield* Effect.all(
            Array.from({ length: 6 }, () => store.enqueueCronTick({ schedule, tick, job: insertOf(queue) })),
            { concurrency: "unbounded" }
          )
          expect(results.filter(Option.isSome).length).toBe(1)
          expect(yield* store.enqueueCronTick({ schedule, tick: t0, job: insertOf(queue) })).toEqual(Option.none())
          const next = yield* store.enqueueCronTick({ schedule, tick: tick + 60_000, job: insertOf(queue) })
          expect(Option.isSome(next)).toBe(true)
          expect((yield* store.list({ queue })).length).toBe(2)
          const last = (yield* store.cronLastTicks).find((row) => row.schedule === schedule)
          expect(last).toEqual({ schedule, tick: tick + 60_000 })
        }))

      it.scoped("hands jobs enqueued now to a local worker with room, inserted already claimed", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("local")
          const paused = freshQueue("local-paused")
          const taken: Array<ReadonlyArray<JobRecord>> = []
          const asked: Array<[string, number]> = []
          let room = 1
          let cancelled = 0
          const localWorker = {
            workerId: "local-1",
            leaseDuration: Duration.seconds(30),
            reserve: (q: string, _name: string, count: number) => {
              asked.push([q, count])
              return q === queue || q === paused
                ? {
                  count: Math.min(count, room),
                  take: (jobs: ReadonlyArray<JobRecord>) => Effect.sync(() => void taken.push(jobs)),
                  cancel: () => void cancelled++
                }
                : undefined
            }
          }
          yield* store.registerLocalWorker(localWorker)
          const [handed] = yield* store.insert([insertOf(queue, { tenantId: "ws-1", metadata: JSON.stringify({ a: 1 }) })])
          const claimed = {
            id: handed!.id,
            queue,
            state: "running",
            attempt: 1,
            workerId: "local-1",
            tenantId: "ws-1",
            metadata: { a: 1 },
            attemptedAt: t0,
            leaseExpiresAt: t0 + 30_000
          }
          expect(taken).toHaveLength(1)
          expect(taken[0]).toEqual([yield* get(store, handed!.id)])
          expect(taken[0]![0]).toMatchObject(claimed)
          expect(yield* claimAll(store, queue)).toEqual([])
          expect(yield* store.settle([Settlement.Complete({ ...leaseOf(taken[0]![0]!), result: null })])).toEqual([true])

          // A batch larger than the room: the jobs first by priority go, in claim order; the
          // rest wait for a claim, announced.
          room = 2
          const wakeups = yield* store.subscribeWakeups
          const woken = yield* Effect.fork(wakeups.pipe(Stream.filter((q) => q === queue), Stream.take(1), Stream.runDrain))
          const batch = yield* store.insert([
            insertOf(queue, { priority: 5 }),
            insertOf(queue, { priority: 1 }),
            insertOf(queue, { priority: 5 }),
            insertOf(queue, { priority: 0 })
          ])
          expect(asked.at(-1)).toEqual([queue, 4])
          expect(taken[1]!.map((job) => job.id)).toEqual([batch[3]!.id, batch[1]!.id])
          for (const job of taken[1]!) expect(job).toEqual(yield* get(store, job.id))
          yield* Fiber.join(woken)
          expect((yield* claimAll(store, queue)).map((job) => job.id)).toEqual([batch[0]!.id, batch[2]!.id])

          // Only jobs due now, without unique keys, of one queue, are offered.
          asked.length = 0
          yield* store.insert([insertOf(queue, { runAt: t0 + 1000 })])
          yield* store.insert([insertOf(queue), insertOf(queue, { uniqueKey: `${queue}-key` })])
          yield* store.insert([insertOf(queue), insertOf(freshQueue("local-mixed"))])
          expect(asked).toEqual([])
          // A worker without room for the queue: the job waits for a claim.
          const other = freshQueue("local-other")
          yield* store.insert([insertOf(other)])
          expect(asked).toEqual([[other, 1]])
          expect(yield* claimAll(store, other)).toHaveLength(1)

          // A paused queue: the room is given back, and the jobs wait as available.
          yield* store.setQueuePaused(paused, true)
          const waiting = yield* store.insert([insertOf(paused), insertOf(paused)])
          expect(cancelled).toBe(1)
          for (const job of waiting) expect((yield* get(store, job.id)).state).toBe("available")
          expect(taken).toHaveLength(2)
        }))

      it.scoped("stops handing jobs to a local worker once its registration's scope closes", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("local-closed")
          let asked = 0
          yield* Effect.scoped(store.registerLocalWorker({
            workerId: "local-2",
            leaseDuration: Duration.seconds(30),
            reserve: () => {
              asked++
              return undefined
            }
          }))
          const [job] = yield* store.insert([insertOf(queue)])
          expect(asked).toBe(0)
          expect((yield* get(store, job!.id)).state).toBe("available")
        }))

      it.scoped("announces new work on the wake-up stream", () =>
        Effect.gen(function*() {
          const store = yield* setup
          const queue = freshQueue("wake")
          const wakeups = yield* store.subscribeWakeups
          const woken = yield* Effect.fork(
            wakeups.pipe(Stream.filter((q) => q === queue), Stream.take(1), Stream.runCollect)
          )
          yield* store.insert([insertOf(queue)])
          expect(Chunk.toReadonlyArray(yield* Fiber.join(woken))).toEqual([queue])
        }))
    })
  })
