/**
 * The workers of this process registered with a store, for handing a job just enqueued
 * straight to one with an idle runner (`JobStoreShape.registerLocalWorker`). Shared by every
 * store, so they decide alike which jobs qualify.
 */
import { Duration, Effect, type Scope } from "effect"
import type { JobInsert, LocalReservation, LocalWorker } from "../JobStore.js"

/** What a claim at `now` sets on a job, whether by a claim or by an insert for a local worker. */
export interface ClaimStamp {
  readonly now: number
  readonly leaseExpiresAt: number
  readonly workerId: string
}

/** The claim a handed-off job is inserted under, and the runner promised to it. */
export interface LocalClaim extends ClaimStamp {
  readonly reservation: LocalReservation
}

export const makeLocalWorkers = () => {
  const workers = new Set<LocalWorker>()
  return {
    register: (worker: LocalWorker): Effect.Effect<void, never, Scope.Scope> =>
      Effect.acquireRelease(Effect.sync(() => void workers.add(worker)), () => Effect.sync(() => void workers.delete(worker))),
    /**
     * A local worker's claim for these jobs inserted at `now`, if they qualify: one job, due now,
     * without a unique key (whose duplicate answer needs the usual path), and a worker with an
     * idle runner for its queue.
     */
    claimFor: (jobs: ReadonlyArray<JobInsert>, now: number): LocalClaim | undefined => {
      if (workers.size === 0 || jobs.length !== 1) return undefined
      const job = jobs[0]!
      if (job.uniqueKey !== null || job.runAt > now) return undefined
      for (const worker of workers) {
        const reservation = worker.reserve(job.queue, job.name)
        if (reservation !== undefined) {
          return {
            now,
            leaseExpiresAt: now + Duration.toMillis(worker.leaseDuration),
            workerId: worker.workerId,
            reservation
          }
        }
      }
      return undefined
    }
  }
}
