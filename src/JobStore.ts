/**
 * The job store: the one place the runtime talks to storage.
 *
 * Every driver (memory here; SQLite and PostgreSQL in their own modules) implements this
 * interface with the same semantics, checked by one conformance suite. Time is read from
 * Effect's `Clock` at the call, so `TestClock` drives leases, run-at and rescue in tests.
 *
 * States (see docs/state-machine.md):
 * - `scheduled`  waiting for its run-at (enqueued with a delay, or snoozed)
 * - `available`  ready to be claimed
 * - `running`    claimed by a worker, under a lease
 * - `retryable`  failed, waiting for its retry time
 * - `completed` / `cancelled` / `discarded`  final
 * A `scheduled` or `retryable` job becomes claimable once its run-at has passed; there is no
 * separate promotion step.
 */
import { Context, Data, type Duration, Effect, Layer, type Option, Schema, type Scope, type Stream } from "effect"
import type { StoreError } from "./Errors.js"
import { makeMemoryStore } from "./stores/memory.js"
import { tracedStore } from "./internal/tracedStore.js"

export const JobState = Schema.Literal(
  "scheduled",
  "available",
  "running",
  "retryable",
  "completed",
  "cancelled",
  "discarded"
)
export type JobState = typeof JobState.Type

/** States a job can still leave: its unique key is live while it is in one of them. */
export const activeStates: ReadonlyArray<JobState> = ["scheduled", "available", "running", "retryable"]
export const finalStates: ReadonlyArray<JobState> = ["completed", "cancelled", "discarded"]

export const Trigger = Schema.Literal("queue", "cron", "manual")
export type Trigger = typeof Trigger.Type

/** What went wrong in one attempt, as stored with the job. */
export interface AttemptError {
  readonly attempt: number
  /** Epoch milliseconds. */
  readonly at: number
  readonly kind: "failure" | "defect" | "timeout" | "interrupted" | "lease-expired" | "invalid-payload" | "unknown-job"
  /** Human-readable: the pretty-printed Cause for failures and defects. */
  readonly message: string
  /** The typed error, encoded with the job's error Schema, when it has one. */
  readonly error?: unknown
}

/** A job to insert. Payload and metadata are JSON text, already encoded and size-checked. */
export interface JobInsert {
  readonly name: string
  readonly queue: string
  readonly payload: string
  readonly priority: number
  readonly maxAttempts: number
  /** Epoch milliseconds; in the past or now means available at once. */
  readonly runAt: number
  readonly trigger: Trigger
  readonly tenantId: string | null
  readonly metadata: string | null
  readonly uniqueKey: string | null
  /** W3C trace context of the enqueueing span (`traceparent`), for linking the job's spans. */
  readonly traceContext: string | null
}

export interface InsertResult {
  readonly id: string
  /** False when a live job with the same unique key existed: `id` is that job's. */
  readonly inserted: boolean
}

/** A stored job. Times are epoch milliseconds. */
export interface JobRecord {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly state: JobState
  /** JSON text of the encoded payload. */
  readonly payload: string
  readonly priority: number
  /** Attempts started so far (the running attempt included). */
  readonly attempt: number
  readonly maxAttempts: number
  readonly trigger: Trigger
  readonly tenantId: string | null
  readonly metadata: Readonly<Record<string, unknown>>
  readonly uniqueKey: string | null
  /** W3C trace context of the enqueueing span (`traceparent`), when there was one. */
  readonly traceContext: string | null
  readonly enqueuedAt: number
  readonly runAt: number
  readonly attemptedAt: number | null
  readonly finishedAt: number | null
  /** Fencing token of the current claim: a settlement or heartbeat must present it. */
  readonly leaseToken: number
  readonly leaseExpiresAt: number | null
  readonly workerId: string | null
  readonly cancelRequested: boolean
  readonly errors: ReadonlyArray<AttemptError>
  /** JSON text of the encoded result of a completed job, if it has a success Schema. */
  readonly result: string | null
}

/** A claimed job, identified by id and the fencing token of its claim. */
export interface Lease {
  readonly id: string
  readonly token: number
}

/**
 * How a running attempt ends. Each applies only while the job is `running` under the same
 * fencing token; otherwise the settlement is stale and rejected.
 */
export type Settlement = Data.TaggedEnum<{
  /**
   * → completed; or, with `keep: false` (a worker that keeps completed jobs for no time), deleted
   * at once: one write instead of a completed row now and a prune later.
   */
  Complete: { readonly id: string; readonly token: number; readonly result: string | null; readonly keep?: boolean }
  /** → retryable, claimable again at `runAt` */
  Retry: { readonly id: string; readonly token: number; readonly runAt: number; readonly error: AttemptError }
  /** → discarded, for good */
  Discard: { readonly id: string; readonly token: number; readonly error: AttemptError }
  /** → cancelled, for good */
  Cancel: { readonly id: string; readonly token: number; readonly reason: string }
  /** → scheduled at `runAt`, giving the attempt back */
  Snooze: { readonly id: string; readonly token: number; readonly runAt: number }
  /** → available at once, giving the attempt back (shutdown, buffered jobs) */
  Release: { readonly id: string; readonly token: number }
}>
export const Settlement = Data.taggedEnum<Settlement>()

export interface ClaimRequest {
  readonly workerId: string
  /** How many jobs to claim at most from each queue. */
  readonly queues: ReadonlyArray<{ readonly queue: string; readonly limit: number }>
  readonly leaseDuration: Duration.Duration
}

export interface ClaimResult {
  readonly jobs: ReadonlyArray<JobRecord>
  /**
   * When no job was claimed: the earliest run-at of a job waiting in those queues (scheduled or
   * retryable), so an idle worker can sleep exactly until then.
   */
  readonly nextRunAt: number | null
}

export interface HeartbeatResult {
  /** Leases the worker no longer holds (rescued, or settled elsewhere): stop those jobs. */
  readonly lost: ReadonlyArray<string>
  /** Jobs asked to be cancelled while running. */
  readonly cancelRequested: ReadonlyArray<string>
}

export interface RescueResult {
  readonly retried: ReadonlyArray<string>
  readonly discarded: ReadonlyArray<string>
}

export interface JobFilter {
  readonly queue?: string
  readonly state?: JobState
  readonly name?: string
  readonly limit?: number
  readonly offset?: number
}

export interface PruneRequest {
  /** Delete jobs that finished in each of these states before the given epoch milliseconds. */
  readonly finishedBefore: Partial<Record<"completed" | "cancelled" | "discarded", number>>
  /** At most this many rows per call, so pruning never holds long locks. */
  readonly limit: number
}

export interface CronTick {
  /** The schedule's name; the store keeps its last enqueued tick. */
  readonly schedule: string
  /** The tick time, epoch milliseconds. */
  readonly tick: number
  readonly job: JobInsert
}

/** Jobs that reached a final state within one time bucket. */
export interface FinishedCount {
  /** Start of the bucket, epoch milliseconds: a multiple of the requested bucket size. */
  readonly bucket: number
  readonly state: "completed" | "cancelled" | "discarded"
  readonly count: number
}

export interface FinishedCountsRequest {
  /** Count jobs whose `finishedAt` is at or after this time, epoch milliseconds. */
  readonly since: number
  /** Bucket size in milliseconds (a positive integer). */
  readonly bucketMillis: number
}

export interface QueueCount {
  readonly queue: string
  readonly state: JobState
  readonly count: number
}

/**
 * A worker of this process that can take jobs the moment they are inserted (see
 * `JobStoreShape.registerLocalWorker`).
 */
export interface LocalWorker {
  readonly workerId: string
  readonly leaseDuration: Duration.Duration
  /**
   * Promise room to up to `count` jobs of this queue and name, or answer undefined when there is
   * none now (or the worker has no handler for the name). Synchronous: called inside the insert.
   */
  readonly reserve: (queue: string, name: string, count: number) => LocalReservation | undefined
}

/** Room promised to jobs about to be inserted. Exactly one of `take` and `cancel` is called. */
export interface LocalReservation {
  /** How many of the jobs the worker takes (at least one, at most the count asked for). */
  readonly count: number
  /** The jobs were inserted already claimed by the worker, under its lease: run them. */
  readonly take: (jobs: ReadonlyArray<JobRecord>) => Effect.Effect<void>
  /** The jobs were not claimed for the worker (their queue is paused, or the insert failed). */
  readonly cancel: () => void
}

export interface JobStoreShape {
  /**
   * Insert jobs in one batch; a live unique key returns the existing job instead. Announces the
   * jobs' queues on the wake-up channel (delayed jobs too, so idle workers learn their run-at),
   * except for jobs handed to a local worker (see `registerLocalWorker`).
   */
  readonly insert: (jobs: ReadonlyArray<JobInsert>) => Effect.Effect<ReadonlyArray<InsertResult>, StoreError>
  /**
   * Claim due jobs, ordered by priority (lower first), then run-at, then id; each claim moves
   * the job to `running`, spends an attempt, and issues a lease with a new fencing token.
   * Paused queues are skipped.
   */
  readonly claim: (request: ClaimRequest) => Effect.Effect<ClaimResult, StoreError>
  /** Apply settlements in one batch; returns, in order, whether each one applied (false = stale). */
  readonly settle: (settlements: ReadonlyArray<Settlement>) => Effect.Effect<ReadonlyArray<boolean>, StoreError>
  /** Extend the leases the worker still holds. */
  readonly heartbeat: (
    leases: ReadonlyArray<Lease>,
    leaseDuration: Duration.Duration
  ) => Effect.Effect<HeartbeatResult, StoreError>
  /** Return running jobs whose lease expired to `retryable`, or discard them when out of attempts. */
  readonly rescue: Effect.Effect<RescueResult, StoreError>
  readonly get: (id: string) => Effect.Effect<Option.Option<JobRecord>, StoreError>
  /** Newest first. */
  readonly list: (filter: JobFilter) => Effect.Effect<ReadonlyArray<JobRecord>, StoreError>
  readonly counts: Effect.Effect<ReadonlyArray<QueueCount>, StoreError>
  /**
   * Finished jobs since a time, counted per final state and time bucket (the bucket of a job is
   * `floor(finishedAt / bucketMillis) * bucketMillis`). Buckets with no jobs are left out. For
   * throughput and failure-rate charts; jobs already pruned are not counted.
   */
  readonly finishedCounts: (request: FinishedCountsRequest) => Effect.Effect<ReadonlyArray<FinishedCount>, StoreError>
  /**
   * Cancel a job: a waiting job becomes `cancelled` at once; a running one is flagged and its
   * worker interrupts it. A finished job is left as it is. None when no such job.
   */
  readonly cancel: (id: string) => Effect.Effect<Option.Option<JobRecord>, StoreError>
  /** Make a waiting, failed or finished-unsuccessfully job available now. None when no such job. */
  readonly retry: (id: string) => Effect.Effect<Option.Option<JobRecord>, StoreError>
  /** Delete finished jobs older than the given ages; returns how many were deleted. */
  readonly prune: (request: PruneRequest) => Effect.Effect<number, StoreError>
  /** Pause (or resume) a queue for every worker: nothing is claimed from a paused queue. */
  readonly setQueuePaused: (queue: string, paused: boolean) => Effect.Effect<void, StoreError>
  readonly pausedQueues: Effect.Effect<ReadonlyArray<string>, StoreError>
  /**
   * Cron: if `tick` is later than the schedule's stored last tick (or it has none), store it as
   * the last tick and insert the job, atomically. Of many workers enqueueing the same tick, one
   * wins. Returns the job id when this call enqueued the tick (the job may be a live duplicate
   * by unique key), none when the tick was already taken.
   */
  readonly enqueueCronTick: (tick: CronTick) => Effect.Effect<Option.Option<InsertResult>, StoreError>
  /** The last enqueued tick of every schedule. */
  readonly cronLastTicks: Effect.Effect<ReadonlyArray<{ readonly schedule: string; readonly tick: number }>, StoreError>
  /**
   * Subscribe, for the scope, to the names of queues that get new work, so idle workers wake up
   * at once; polling covers anything missed. `"*"` means any queue (after a reconnection, say).
   * Listening has begun when this succeeds.
   */
  readonly subscribeWakeups: Effect.Effect<Stream.Stream<string>, StoreError, Scope.Scope>
  /** Subscribe, for the scope, to the ids of running jobs whose cancellation was requested. */
  readonly subscribeCancellations: Effect.Effect<Stream.Stream<string>, StoreError, Scope.Scope>
  /**
   * Register a worker of this process for the scope. Jobs enqueued in this process to run now,
   * in one batch of one job name and queue, without unique keys and outside a transaction, while
   * the worker has a handler for them and room (see `LocalWorker.reserve`), are inserted already
   * claimed by that worker (attempt 1, a lease and its fencing token) and handed to it in
   * memory: they start when the insert commits, without a wake-up and a claim round trip. Of a
   * batch larger than the room, the jobs first in claim order (priority, run-at, position) are
   * handed over and the rest inserted as usual. Other workers are not woken for handed-over jobs.
   */
  readonly registerLocalWorker: (worker: LocalWorker) => Effect.Effect<void, never, Scope.Scope>
}

export class JobStore extends Context.Tag("conveyor/JobStore")<JobStore, JobStoreShape>() {
  /** A store in memory, faithful to the SQL stores' semantics: for tests and trials. */
  static readonly layerMemory: Layer.Layer<JobStore> = Layer.scoped(JobStore, Effect.map(makeMemoryStore, (store) => tracedStore(store)))
}
