/**
 * The workers of this process registered with a store, for handing jobs just enqueued straight
 * to one with room for them (`JobStoreShape.registerLocalWorker`). Shared by every store, so
 * they decide alike which jobs qualify and which of a batch are handed over.
 */
import { Duration, Effect, type Scope } from "effect"
import type { JobInsert, JobRecord, LocalReservation, LocalWorker } from "../JobStore.js"

/** What a claim at `now` sets on a job, whether by a claim or by an insert for a local worker. */
export interface ClaimStamp {
  readonly now: number
  readonly leaseExpiresAt: number
  readonly workerId: string
  /** Added to each job's lease token, modulo `leaseTokenModulus` (`leaseTokens.ts`); a new job's token is the step. */
  readonly tokenStep: number
}

/**
 * The claim handed-over jobs are inserted under (its token step drawn with the insert), the room
 * promised to them, and which they are.
 */
export interface LocalClaim extends Omit<ClaimStamp, "tokenStep"> {
  readonly reservation: LocalReservation
  /** The positions in the batch of the `reservation.count` jobs handed over, in claim order. */
  readonly handed: ReadonlyArray<number>
}

/**
 * The positions of the first `count` jobs in claim order: priority, then run-at, then position
 * (the order of their ids, as the batch is inserted in order).
 */
const pick = (jobs: ReadonlyArray<JobInsert>, count: number): ReadonlyArray<number> =>
  jobs.map((_, i) => i)
    .sort((a, b) => jobs[a]!.priority - jobs[b]!.priority || jobs[a]!.runAt - jobs[b]!.runAt || a - b)
    .slice(0, count)

/**
 * A job as an insert for a local worker leaves it in a SQL store, built from what was inserted
 * (the database answers only its id): the same record a claim would read back.
 */
export const claimedRecord = (job: JobInsert, id: string, claim: ClaimStamp): JobRecord => ({
  id,
  name: job.name,
  queue: job.queue,
  state: "running",
  payload: job.payload,
  priority: job.priority,
  attempt: 1,
  maxAttempts: job.maxAttempts,
  trigger: job.trigger,
  tenantId: job.tenantId,
  metadata: job.metadata === null ? {} : JSON.parse(job.metadata),
  uniqueKey: null,
  traceContext: job.traceContext,
  enqueuedAt: claim.now,
  // Columns hold whole milliseconds.
  runAt: Math.ceil(job.runAt),
  attemptedAt: claim.now,
  finishedAt: null,
  leaseToken: claim.tokenStep,
  leaseExpiresAt: claim.leaseExpiresAt,
  workerId: claim.workerId,
  cancelRequested: false,
  errors: [],
  result: null
})

export const makeLocalWorkers = () => {
  const workers = new Set<LocalWorker>()
  return {
    register: (worker: LocalWorker): Effect.Effect<void, never, Scope.Scope> =>
      Effect.acquireRelease(Effect.sync(() => void workers.add(worker)), () => Effect.sync(() => void workers.delete(worker))),
    /**
     * A local worker's claim for some of these jobs inserted at `now`, if they qualify: all of
     * one name and queue, due now, without unique keys (whose duplicate answers need the usual
     * path), and a worker with room for at least one of them.
     */
    claimFor: (jobs: ReadonlyArray<JobInsert>, now: number): LocalClaim | undefined => {
      const first = jobs[0]
      if (workers.size === 0 || first === undefined) return undefined
      for (const job of jobs) {
        if (job.uniqueKey !== null || job.runAt > now || job.queue !== first.queue || job.name !== first.name) {
          return undefined
        }
      }
      for (const worker of workers) {
        const reservation = worker.reserve(first.queue, first.name, jobs.length)
        if (reservation !== undefined) {
          return {
            now,
            leaseExpiresAt: now + Duration.toMillis(worker.leaseDuration),
            workerId: worker.workerId,
            reservation,
            handed: pick(jobs, reservation.count)
          }
        }
      }
      return undefined
    }
  }
}
