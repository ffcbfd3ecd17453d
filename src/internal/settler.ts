/**
 * Batches settlements: every attempt's outcome goes through one queue, and a single fiber writes
 * whatever has gathered in one store call. An idle worker writes at once (a batch of one); a busy
 * one writes many per round trip, so no job waits on a timer and no job costs a commit of its own.
 *
 * A job's runner does not wait for its write: it hands over the settlement with what to do once
 * the store has answered, and goes on to its next job.
 */
import { Deferred, Effect, Either, Queue, Schedule } from "effect"
import type { StoreError } from "../Errors.js"
import type { JobStoreShape, Settlement } from "../JobStore.js"

/**
 * Settlements per store call. Large enough that a busy worker's settlements never queue up
 * behind the batch in flight: at 500, some 2,000 waited at the end of a fast drain, measured.
 */
const maxBatch = 2000
const wasApplied: Either.Either<boolean, StoreError> = Either.right(true)
const wasStale: Either.Either<boolean, StoreError> = Either.right(false)

/** What to do once the store has answered: whether the settlement applied (false: stale lease). */
export type OnSettled = (result: Either.Either<boolean, StoreError>) => Effect.Effect<void>

export const makeSettler = (store: JobStoreShape) =>
  Effect.gen(function*() {
    const pending = yield* Queue.unbounded<readonly [Settlement, OnSettled]>()

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
      const failed = Either.isLeft(results) ? Either.left(results.left) : undefined
      const applied = Either.getOrElse(results, () => [])
      for (let i = 0; i < batch.length; i++) {
        yield* batch[i]![1](failed ?? (applied[i] === true ? wasApplied : wasStale))
      }
    })
    yield* Effect.forkScoped(Effect.forever(flush))

    /** Queue a settlement; `onSettled` runs on the settler's fiber once the store has answered. */
    const submit = (settlement: Settlement, onSettled: OnSettled): void => {
      Queue.unsafeOffer(pending, [settlement, onSettled])
    }

    /** Write a settlement and wait for the answer (off the hot path: shutdown, early cancels). */
    const settle = (settlement: Settlement): Effect.Effect<boolean, StoreError> =>
      Effect.flatMap(Deferred.make<boolean, StoreError>(), (deferred) => {
        submit(settlement, (result) => Deferred.complete(deferred, result))
        return Deferred.await(deferred)
      })

    return { submit, settle } as const
  })
