/**
 * Batches settlements: every attempt's outcome goes through one queue, and a single fiber writes
 * whatever has gathered in one store call. An idle worker writes at once (a batch of one); a busy
 * one writes many per round trip, so no job waits on a timer and no job costs a commit of its own.
 */
import { Deferred, Effect, Queue, Schedule } from "effect"
import type { StoreError } from "../Errors.js"
import type { JobStoreShape, Settlement } from "../JobStore.js"

const maxBatch = 500

export const makeSettler = (store: JobStoreShape) =>
  Effect.gen(function*() {
    const pending = yield* Queue.unbounded<readonly [Settlement, Deferred.Deferred<boolean, StoreError>]>()

    const flush = Effect.gen(function*() {
      const first = yield* Queue.take(pending)
      // Let the jobs finishing right now add theirs, for as long as more keep coming (a few
      // scheduler turns, no timer): a synchronous driver (SQLite) would otherwise write every
      // settlement alone, and each write is a commit.
      let size = 0
      for (let turn = 0; turn < 16; turn++) {
        yield* Effect.yieldNow()
        const now = yield* Queue.size(pending)
        if (now === size || now >= maxBatch) break
        size = now
      }
      const batch = [first, ...(yield* Queue.takeUpTo(pending, maxBatch - 1))]
      const results = yield* store.settle(Array.from(batch, ([settlement]) => settlement)).pipe(
        Effect.retry(Schedule.exponential("50 millis").pipe(Schedule.intersect(Schedule.recurs(5)))),
        Effect.either
      )
      let i = 0
      for (const [, deferred] of batch) {
        if (results._tag === "Right") yield* Deferred.succeed(deferred, results.right[i++] ?? false)
        else yield* Deferred.fail(deferred, results.left)
      }
    })
    yield* Effect.forkScoped(Effect.forever(flush))

    /** Write a settlement; resolves with whether it applied (false: the lease was stale). */
    const submit = (settlement: Settlement): Effect.Effect<boolean, StoreError> =>
      Effect.flatMap(Deferred.make<boolean, StoreError>(), (deferred) =>
        Effect.zipRight(Queue.offer(pending, [settlement, deferred]), Deferred.await(deferred)))

    return { submit } as const
  })
