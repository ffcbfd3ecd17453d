/**
 * What differs between the SQL databases: every statement, written out per dialect (as River
 * keeps its SQL per driver), behind one interface. The shared logic lives in `store.ts`.
 *
 * Rows come back with snake_case columns; times are epoch milliseconds (bigint in PostgreSQL,
 * integer in SQLite), so the store runs on Effect's `Clock` and `TestClock` drives it.
 */
import { TransactionConnection } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option, type Scope, type Stream } from "effect"
import type { ClaimStamp } from "../../internal/localWorkers.js"
import type { AttemptError, JobFilter, Lease } from "../../JobStore.js"

export interface JobRow {
  readonly id: number | string | bigint
  readonly name: string
  readonly queue: string
  readonly state: string
  readonly payload: string
  readonly priority: number
  readonly attempt: number
  readonly max_attempts: number
  readonly trigger: string
  readonly tenant_id: string | null
  readonly metadata: string | null
  readonly unique_key: string | null
  readonly trace_context: string | null
  readonly enqueued_at: number | string
  readonly run_at: number | string
  readonly attempted_at: number | string | null
  readonly finished_at: number | string | null
  readonly lease_token: number
  readonly lease_expires_at: number | string | null
  readonly worker_id: string | null
  readonly cancel_requested: boolean | number
  readonly errors: string | ReadonlyArray<unknown>
  readonly result: string | null
}

/** A job to insert, as sent to the database in one JSON batch. */
export interface InsertRow {
  readonly ord: number
  readonly name: string
  readonly queue: string
  readonly payload: string
  readonly priority: number
  readonly max_attempts: number
  readonly trigger: string
  readonly tenant_id: string | null
  readonly metadata: string | null
  readonly unique_key: string | null
  readonly trace_context: string | null
  readonly run_at: number
}

/**
 * The columns a claim answers, in this order, as raw values: building a row object per claimed
 * job costs as much as claiming it. The rest of the record is known from the claim itself.
 */
export const claimedColumns = [
  "id",
  "name",
  "queue",
  "payload",
  "priority",
  "attempt",
  "max_attempts",
  "trigger",
  "tenant_id",
  "metadata",
  "unique_key",
  "trace_context",
  "enqueued_at",
  "run_at",
  "lease_token",
  "errors"
] as const

/** A completed attempt: the common settlement, written by a statement of its own. */
export interface CompleteRow {
  readonly id: string
  readonly token: number
  readonly result: string | null
}

const ownValues = (row: InsertRow) =>
  [row.name, row.queue, row.payload, row.priority, row.max_attempts, row.trigger, row.tenant_id, row.metadata] as const

/**
 * A single job's insert as plain parameters, in this order: cheaper than a JSON batch of one.
 * Both dialects read them in this order.
 */
export const singleInsertParams = (row: InsertRow, now: number): ReadonlyArray<unknown> => [
  ...ownValues(row),
  row.unique_key,
  row.trace_context,
  row.run_at,
  now
]

/** The parameters of one job inserted claimed for a local worker (never with a unique key). */
export const claimedInsertParams = (row: InsertRow, claim: ClaimStamp): ReadonlyArray<unknown> => [
  ...ownValues(row),
  row.trace_context,
  row.run_at,
  claim.now,
  claim.leaseExpiresAt,
  claim.workerId,
  claim.tokenStep
]

/** A settlement, flattened for one batch statement. */
export interface SettleRow {
  readonly id: string
  readonly token: number
  readonly state: string
  /** 1 when the attempt is given back (snooze, release). */
  readonly give_back: number
  readonly run_at: number | null
  readonly result: string | null
  /** The attempt error to append, if any. */
  readonly error: AttemptError | { readonly kind: string; readonly at: number; readonly message: string } | null
}

export interface Migration {
  readonly id: number
  readonly name: string
  readonly statements: ReadonlyArray<string>
}

export type Signal = { readonly _tag: "Wakeup"; readonly queue: string } | {
  readonly _tag: "Cancel"
  readonly id: string
} | { readonly _tag: "Connected" } | { readonly _tag: "Disconnected" }

/** What `insertClaimed` answers. */
export interface ClaimedInsert {
  /** Each job's `[id, state]`, in input order. */
  readonly rows: ReadonlyArray<ReadonlyArray<unknown>>
  /**
   * Waits until the insert is on disk. The rows may come sooner (PostgreSQL), so that the worker
   * starts its jobs at once; the enqueue answers its caller after this.
   */
  readonly durable: Effect.Effect<void, SqlError>
}

export interface Dialect {
  readonly name: "pg" | "sqlite"
  /** Forward-only migrations, in order. */
  readonly migrations: ReadonlyArray<Migration>
  /** Run the migrations under a lock that serializes concurrent starters. */
  readonly migrate: Effect.Effect<ReadonlyArray<Migration>, SqlError>

  readonly insert: (rows: ReadonlyArray<InsertRow>, now: number) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly unique_key: string | null }>, SqlError>
  /**
   * Insert jobs due now without unique keys, the `picked` ones already claimed by a worker of
   * this process (see `registerLocalWorker`) unless their queue is paused.
   */
  readonly insertClaimed: (
    rows: ReadonlyArray<InsertRow>,
    picked: ReadonlyArray<boolean>,
    claim: ClaimStamp
  ) => Effect.Effect<ClaimedInsert, SqlError>
  readonly liveByUniqueKey: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly unique_key: string }>, SqlError>
  readonly claim: (params: ClaimStamp & {
    readonly queues: ReadonlyArray<{ readonly queue: string; readonly limit: number }>
  }) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
  readonly nextRunAt: (queues: ReadonlyArray<string>, now: number) => Effect.Effect<number | null, SqlError>
  /** Complete attempts; answers `[id, lease_token]` of the ones whose lease no longer held (not completed). */
  readonly complete: (rows: ReadonlyArray<CompleteRow>, now: number) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
  /** Completes by deleting the jobs (`keep: false`); answers `[id, lease_token]` of the ones not deleted (stale leases). */
  readonly completeAndDelete: (leases: ReadonlyArray<Lease>) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
  readonly settle: (rows: ReadonlyArray<SettleRow>, now: number) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly lease_token: number; readonly queue: string; readonly state: string }>, SqlError>
  readonly heartbeat: (leases: ReadonlyArray<{ readonly id: string; readonly token: number }>, leaseExpiresAt: number) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly lease_token: number; readonly cancel_requested: boolean | number }>, SqlError>
  readonly rescue: (now: number) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly state: string }>, SqlError>
  readonly get: (id: string) => Effect.Effect<ReadonlyArray<JobRow>, SqlError>
  readonly list: (filter: JobFilter) => Effect.Effect<ReadonlyArray<JobRow>, SqlError>
  readonly counts: Effect.Effect<ReadonlyArray<{ readonly queue: string; readonly state: string; readonly count: number | string }>, SqlError>
  /** Jobs finished at or after `since`, per final state and bucket (`floor(finished_at / bucket) * bucket`). */
  readonly finishedCounts: (since: number, bucketMillis: number) => Effect.Effect<ReadonlyArray<{ readonly bucket: number | string; readonly state: string; readonly count: number | string }>, SqlError>
  /** Cancel a waiting job, or flag a running one; returns the job as it now is, if it was active. */
  readonly cancel: (id: string, now: number) => Effect.Effect<ReadonlyArray<JobRow>, SqlError>
  readonly retry: (id: string, now: number) => Effect.Effect<ReadonlyArray<JobRow>, SqlError>
  readonly prune: (before: { readonly completed: number | null; readonly cancelled: number | null; readonly discarded: number | null }, limit: number) => Effect.Effect<number, SqlError>
  readonly setQueuePaused: (queue: string, paused: boolean) => Effect.Effect<void, SqlError>
  readonly pausedQueues: Effect.Effect<ReadonlyArray<string>, SqlError>
  /** Advance the schedule's last tick if `tick` is later; true when this call advanced it. */
  readonly advanceCronTick: (schedule: string, tick: number) => Effect.Effect<boolean, SqlError>
  readonly cronLastTicks: Effect.Effect<ReadonlyArray<{ readonly schedule: string; readonly tick: number | string }>, SqlError>
  readonly withTransaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  /** Tell other processes about new work or a cancellation (PostgreSQL); a no-op where there are none to tell. */
  readonly notifyWakeup: (queues: ReadonlyArray<string>) => Effect.Effect<void, SqlError>
  readonly notifyCancel: (id: string) => Effect.Effect<void, SqlError>
  /** Signals from other processes, when the database can carry them. */
  readonly signals: Stream.Stream<Signal, SqlError, Scope.Scope> | undefined
}

/**
 * A statement on a store's own connection (`outside`), unless the caller is inside a `SqlClient`
 * transaction: then only the client reaches the transaction's connection (`viaClient`).
 */
export const outsideTransaction = <A, E>(
  viaClient: () => Effect.Effect<A, E>,
  outside: () => Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  Effect.flatMap(
    Effect.serviceOption(TransactionConnection),
    (transaction) => Option.isSome(transaction) ? viaClient() : outside()
  )

/**
 * The `list` query's filter and paging as SQL and parameters, with `placeholder(n)` naming the
 * n-th parameter (1-based) in the dialect's style. Column names are fixed here; values are
 * always parameters.
 */
export const listQuery = (jobsTable: string, filter: JobFilter, placeholder: (n: number) => string) => {
  const where: Array<string> = []
  const params: Array<unknown> = []
  for (const [column, value] of [["queue", filter.queue], ["state", filter.state], ["name", filter.name]] as const) {
    if (value === undefined) continue
    params.push(value)
    where.push(`${column} = ${placeholder(params.length)}`)
  }
  params.push(filter.limit ?? 100, filter.offset ?? 0)
  const text = `SELECT * FROM ${jobsTable} ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
    ORDER BY id DESC LIMIT ${placeholder(params.length - 1)} OFFSET ${placeholder(params.length)}`
  return { text, params }
}
