/**
 * SQLite statements. Batches travel as one JSON parameter (`json_each`). Every claim is a single
 * `UPDATE ... RETURNING` statement, which SQLite runs under its write lock, so claims from
 * several processes on one file never overlap; `busy_timeout` makes writers queue up.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Schedule } from "effect"
import type { JobFilter } from "../../JobStore.js"
import { leaseTokenModulus } from "../../internal/leaseTokens.js"
import { claimedColumns, claimedInsertParams, type Dialect, type JobRow, listQuery, type Migration, outsideTransaction, singleInsertParams } from "./dialect.js"
import { directStatements } from "./sqliteThread.js"

const waiting = `('available', 'scheduled', 'retryable')`
const active = `('scheduled', 'available', 'running', 'retryable')`

const quote = (name: string) => `"${name.replace(/"/g, "\"\"")}"`

const migrations = (prefix: string): ReadonlyArray<Migration> => {
  const t = (table: string) => quote(`${prefix}${table}`)
  return [{
    id: 1,
    name: "jobs",
    statements: [
      `CREATE TABLE ${t("jobs")} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        queue TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('scheduled', 'available', 'running', 'retryable', 'completed', 'cancelled', 'discarded')),
        payload TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        attempt INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        trigger TEXT NOT NULL,
        tenant_id TEXT,
        metadata TEXT,
        unique_key TEXT,
        trace_context TEXT,
        enqueued_at INTEGER NOT NULL,
        run_at INTEGER NOT NULL,
        attempted_at INTEGER,
        finished_at INTEGER,
        lease_token INTEGER NOT NULL DEFAULT 0,
        lease_expires_at INTEGER,
        worker_id TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        errors TEXT NOT NULL DEFAULT '[]',
        result TEXT
      )`,
      `CREATE INDEX ${t("jobs_claim")} ON ${t("jobs")} (queue, priority, run_at, id) WHERE state IN ${waiting}`,
      `CREATE UNIQUE INDEX ${t("jobs_unique_key")} ON ${t("jobs")} (unique_key) WHERE unique_key IS NOT NULL AND state IN ${active}`,
      `CREATE INDEX ${t("jobs_lease")} ON ${t("jobs")} (lease_expires_at) WHERE state = 'running'`,
      `CREATE INDEX ${t("jobs_finished")} ON ${t("jobs")} (state, finished_at) WHERE state IN ('completed', 'cancelled', 'discarded')`,
      `CREATE INDEX ${t("jobs_queue_state")} ON ${t("jobs")} (queue, state)`,
      `CREATE TABLE ${t("queues")} (name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0)`,
      `CREATE TABLE ${t("cron_ticks")} (schedule TEXT PRIMARY KEY, last_tick INTEGER NOT NULL)`
    ]
  }, {
    // Every claim and settlement rewrote an entry of this index, for the benefit of `counts`
    // alone (admin reads): measured at about a quarter of a job's write cost. Counts scan.
    id: 2,
    name: "drop_queue_state_index",
    statements: [`DROP INDEX IF EXISTS ${t("jobs_queue_state")}`]
  }]
}

/** SQLITE_BUSY can still surface when a read transaction must become a write one: try again. */
const isBusy = (error: unknown) =>
  /SQLITE_BUSY|database is locked/i.test(
    String(error instanceof SqlError ? (error.cause as { code?: string } | undefined)?.code ?? error.cause : error)
  )
const busyRetries = Schedule.exponential("10 millis").pipe(Schedule.intersect(Schedule.recurs(20)))
// The retry is set up only once the first try found the database busy: on every statement it
// cost as much as the statement's own bookkeeping.
const retryBusy = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.catchIf(effect, isBusy, () => Effect.retry(effect, { while: isBusy, schedule: busyRetries }))

/**
 * The leases sent whose write did not apply, from the `[id, lease_token]` rows of those that did
 * (SQLite cannot answer the others in the writing statement itself, as PostgreSQL does).
 */
const staleLeases = (
  sent: ReadonlyArray<{ readonly id: string; readonly token: number }>,
  applied: ReadonlyArray<ReadonlyArray<unknown>>
): ReadonlyArray<readonly [string, number]> => {
  // Applied rows are a subset of the leases sent: as many means all of them.
  if (applied.length === sent.length) return []
  const held = new Set(applied.map((row) => `${row[0]}:${row[1]}`))
  return sent.filter((lease) => !held.has(`${lease.id}:${lease.token}`)).map((lease) => [lease.id, lease.token] as const)
}

export const makeSqliteDialect = (prefix: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = (table: string) => quote(`${prefix}${table}`)
    const jobs = t("jobs")
    // Outside a transaction, straight on the thread's connection when the client has one.
    const direct = directStatements(sql)
    const statements = (relaxed: boolean) => ({
      rows: <A extends object>(text: string, params: ReadonlyArray<unknown> = []) => {
        const viaClient = () => sql.unsafe<A>(text, params as Array<unknown>)
        return retryBusy(
          direct === undefined ? viaClient() : outsideTransaction(viaClient, () => direct.rows<A>(text, params, relaxed))
        )
      },
      values: (text: string, params: ReadonlyArray<unknown>) => {
        const viaClient = () => sql.unsafe(text, params as Array<unknown>).values
        return retryBusy(
          direct === undefined ? viaClient() : outsideTransaction(viaClient, () => direct.values(text, params, relaxed))
        )
      }
    })
    const { rows: q, values } = statements(false)
    /**
     * On the thread's connection, commits that do not sync the disk (as on PostgreSQL): for the
     * worker's own bookkeeping (claims, settlements, heartbeats, rescue, pruning), whose last
     * moments a power cut may forget, which makes the affected jobs run again (and their leases'
     * tokens are drawn, so a forgotten claim's worker cannot settle the next one), never loses
     * one; and for a single job handed to a local worker, whose enqueue answers after a sync.
     * With any other client they commit as everything else does.
     */
    const relaxed = statements(true)

    yield* q(`PRAGMA busy_timeout = 10000`)
    // WAL is on already (the client's default). FULL: a commit, an enqueue's say, is on disk
    // when it answers, not only safe from a crash of the application (NORMAL).
    yield* q(`PRAGMA synchronous = FULL`)

    const field = (name: string) => `json_extract(value, '$.${name}')`

    const insertSql = `
      INSERT INTO ${jobs} (name, queue, state, payload, priority, max_attempts, trigger, tenant_id, metadata,
                           unique_key, trace_context, enqueued_at, run_at)
      SELECT ${field("name")}, ${field("queue")},
             CASE WHEN ${field("run_at")} > ? THEN 'scheduled' ELSE 'available' END,
             ${field("payload")}, ${field("priority")}, ${field("max_attempts")}, ${field("trigger")},
             ${field("tenant_id")}, ${field("metadata")}, ${field("unique_key")}, ${field("trace_context")}, ?,
             ${field("run_at")}
      FROM json_each(?) WHERE true ORDER BY key
      ON CONFLICT DO NOTHING
      RETURNING CAST(id AS TEXT) AS id, unique_key`

    // One job (the common enqueue) goes as plain parameters: no JSON to build and take apart.
    const insertOneSql = `
      INSERT INTO ${jobs} (name, queue, state, payload, priority, max_attempts, trigger, tenant_id, metadata,
                           unique_key, trace_context, enqueued_at, run_at)
      SELECT name, queue, CASE WHEN run_at > now THEN 'scheduled' ELSE 'available' END, payload, priority,
             max_attempts, trigger, tenant_id, metadata, unique_key, trace_context, now, run_at
      FROM (SELECT ? AS name, ? AS queue, ? AS payload, ? AS priority, ? AS max_attempts, ? AS trigger,
                   ? AS tenant_id, ? AS metadata, ? AS unique_key, ? AS trace_context, ? AS run_at, ? AS now)
      WHERE true
      ON CONFLICT DO NOTHING
      RETURNING CAST(id AS TEXT) AS id, unique_key`

    // Jobs for a worker of this process, inserted as its claim would leave them, in one
    // statement; the database answers ids alone, as the records are built from what was sent.
    const insertClaimedSql = (source: string) => `
      INSERT INTO ${jobs} (name, queue, state, payload, priority, max_attempts, trigger, tenant_id, metadata,
                           trace_context, enqueued_at, run_at, attempt, attempted_at, lease_token,
                           lease_expires_at, worker_id)
      SELECT name, queue, CASE WHEN claimed THEN 'running' ELSE 'available' END, payload, priority, max_attempts,
             trigger, tenant_id, metadata, trace_context, now, run_at,
             CASE WHEN claimed THEN 1 ELSE 0 END, CASE WHEN claimed THEN now END,
             CASE WHEN claimed THEN lease_token ELSE 0 END, CASE WHEN claimed THEN lease_expires_at END,
             CASE WHEN claimed THEN worker_id END
      FROM (SELECT x.*, x.picked AND NOT EXISTS (SELECT 1 FROM ${t("queues")} q WHERE q.name = x.queue AND q.paused) AS claimed
            FROM (${source}) AS x)
      WHERE true ORDER BY ord
      RETURNING CAST(id AS TEXT), state`
    const insertClaimedOneSql = insertClaimedSql(`
      SELECT 0 AS ord, ? AS name, ? AS queue, ? AS payload, ? AS priority, ? AS max_attempts, ? AS trigger,
             ? AS tenant_id, ? AS metadata, ? AS trace_context, ? AS run_at, 1 AS picked, ? AS now,
             ? AS lease_expires_at, ? AS worker_id, ? AS lease_token`)
    const insertClaimedManySql = insertClaimedSql(`
      SELECT key AS ord, ${field("name")} AS name, ${field("queue")} AS queue, ${field("payload")} AS payload,
             ${field("priority")} AS priority, ${field("max_attempts")} AS max_attempts, ${field("trigger")} AS trigger,
             ${field("tenant_id")} AS tenant_id, ${field("metadata")} AS metadata,
             ${field("trace_context")} AS trace_context, ${field("run_at")} AS run_at, ${field("picked")} AS picked,
             ? AS now, ? AS lease_expires_at, ? AS worker_id, ? AS lease_token
      FROM json_each(?)`)

    const claimSql = `
      UPDATE ${jobs} SET state = 'running', attempt = attempt + 1, attempted_at = ?,
                         lease_token = (lease_token + ?) % ${leaseTokenModulus}, lease_expires_at = ?, worker_id = ?
      WHERE id IN (
        SELECT id FROM ${jobs}
        WHERE queue = ? AND state IN ${waiting} AND run_at <= ?
          AND NOT EXISTS (SELECT 1 FROM ${t("queues")} WHERE name = ? AND paused)
        ORDER BY priority, run_at, id
        LIMIT ?)
      RETURNING ${claimedColumns.join(", ")}`

    const completeSql = `
      UPDATE ${jobs} SET state = 'completed', finished_at = ?, result = u.result, lease_expires_at = NULL, worker_id = NULL
      FROM (SELECT value ->> 0 AS id, value ->> 1 AS token, value ->> 2 AS result FROM json_each(?)) AS u
      WHERE ${jobs}.id = u.id AND ${jobs}.lease_token = u.token AND ${jobs}.state = 'running'
      RETURNING CAST(${jobs}.id AS TEXT), ${jobs}.lease_token`

    const completeAndDeleteSql = `
      DELETE FROM ${jobs} WHERE id IN (
        SELECT j.id FROM json_each(?) AS u JOIN ${jobs} AS j ON j.id = u.value ->> 0 AND j.lease_token = u.value ->> 1
        WHERE j.state = 'running')
      RETURNING CAST(id AS TEXT), lease_token`

    const settleSql = `
      UPDATE ${jobs} SET
        state = u.state,
        attempt = ${jobs}.attempt - u.give_back,
        run_at = COALESCE(u.run_at, ${jobs}.run_at),
        finished_at = CASE WHEN u.state IN ('completed', 'cancelled', 'discarded') THEN ? ELSE NULL END,
        result = COALESCE(u.result, ${jobs}.result),
        errors = CASE WHEN u.error IS NULL THEN ${jobs}.errors ELSE json_insert(${jobs}.errors, '$[#]', json(u.error)) END,
        lease_expires_at = NULL,
        worker_id = NULL
      FROM (SELECT ${field("id")} AS id, ${field("token")} AS token, ${field("state")} AS state,
                   ${field("give_back")} AS give_back, ${field("run_at")} AS run_at, ${field("result")} AS result,
                   ${field("error")} AS error
            FROM json_each(?)) AS u
      WHERE ${jobs}.id = u.id AND ${jobs}.lease_token = u.token AND ${jobs}.state = 'running'
      RETURNING CAST(${jobs}.id AS TEXT) AS id, ${jobs}.lease_token AS lease_token, ${jobs}.queue AS queue, ${jobs}.state AS state`

    const heartbeatSql = `
      UPDATE ${jobs} SET lease_expires_at = ?
      FROM (SELECT ${field("id")} AS id, ${field("token")} AS token FROM json_each(?)) AS u
      WHERE ${jobs}.id = u.id AND ${jobs}.lease_token = u.token AND ${jobs}.state = 'running'
      RETURNING CAST(${jobs}.id AS TEXT) AS id, ${jobs}.lease_token AS lease_token, ${jobs}.cancel_requested AS cancel_requested`

    const rescueSql = `
      UPDATE ${jobs} SET
        state = CASE WHEN cancel_requested THEN 'cancelled' WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
        finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN ? ELSE NULL END,
        run_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN run_at ELSE ? END,
        errors = json_insert(errors, '$[#]', json_object('attempt', attempt, 'at', ?, 'kind', 'lease-expired',
                 'message', 'lease expired: the worker stopped heartbeating')),
        lease_expires_at = NULL,
        worker_id = NULL
      WHERE state = 'running' AND lease_expires_at <= ?
      RETURNING CAST(id AS TEXT) AS id, state`

    const list = (filter: JobFilter) => {
      const { params, text } = listQuery(jobs, filter, () => "?")
      return q<JobRow>(text, params)
    }

    const dialect: Dialect = {
      name: "sqlite",
      migrations: migrations(prefix),
      migrate: retryBusy(sql.withTransaction(Effect.gen(function*() {
        // Write first, so this transaction holds SQLite's write lock before it reads anything:
        // concurrent starters queue up behind it, then find nothing to do.
        yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${t("migrations")} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)`)
        yield* sql.unsafe(`INSERT INTO ${t("migrations")} (id, name) VALUES (0, 'lock') ON CONFLICT (id) DO UPDATE SET applied_at = CURRENT_TIMESTAMP`)
        const applied = new Set((yield* sql.unsafe<{ id: number }>(`SELECT id FROM ${t("migrations")}`)).map((row) => row.id))
        const pending = migrations(prefix).filter((m) => !applied.has(m.id))
        for (const migration of pending) {
          for (const statement of migration.statements) yield* sql.unsafe(statement)
          yield* sql.unsafe(`INSERT INTO ${t("migrations")} (id, name) VALUES (?, ?)`, [migration.id, migration.name])
        }
        return pending
      }))),
      insert: (rows, now) => {
        const [row] = rows
        return rows.length === 1 && row !== undefined
          ? q(insertOneSql, singleInsertParams(row, now))
          : q(insertSql, [now, now, JSON.stringify(rows)])
      },
      liveByUniqueKey: (keys) =>
        q(
          `SELECT CAST(id AS TEXT) AS id, unique_key FROM ${jobs}
           WHERE unique_key IN (SELECT value FROM json_each(?)) AND state IN ${active}`,
          [JSON.stringify(keys)]
        ),
      // A single job commits relaxed, so on the thread's connection the worker starts it before
      // the sync (which took 0.4-0.8 ms of the job's start after an idle moment, measured); its
      // enqueue answers after the sync. A batch's commit syncs: it overlaps the worker's work.
      insertClaimed: (rows, picked, claim) => {
        const [row] = rows
        if (rows.length === 1 && row !== undefined) {
          return Effect.map(
            relaxed.values(insertClaimedOneSql, claimedInsertParams(row, claim)),
            (inserted) => ({ rows: inserted, durable: direct === undefined ? Effect.void : direct.sync })
          )
        }
        return Effect.map(
          values(insertClaimedManySql, [
            claim.now,
            claim.leaseExpiresAt,
            claim.workerId,
            claim.tokenStep,
            JSON.stringify(rows.map((row, i) => ({ ...row, picked: picked[i] })))
          ]),
          (inserted) => ({ rows: inserted, durable: Effect.void })
        )
      },
      claim: ({ leaseExpiresAt, now, queues, tokenStep, workerId }) =>
        Effect.map(
          Effect.forEach(queues, ({ limit, queue }) =>
            relaxed.values(claimSql, [now, tokenStep, leaseExpiresAt, workerId, queue, now, queue, limit])),
          (batches) => batches.flat()
        ),
      nextRunAt: (queues, now) =>
        Effect.map(
          relaxed.rows<{ next: number | null }>(
            `SELECT min(run_at) AS next FROM ${jobs}
             WHERE queue IN (SELECT value FROM json_each(?)) AND state IN ${waiting} AND run_at > ?`,
            [JSON.stringify(queues), now]
          ),
          (rows) => rows[0]?.next ?? null
        ),
      complete: (rows, now) =>
        Effect.map(
          relaxed.values(completeSql, [now, JSON.stringify(rows.map((row) => [Number(row.id), row.token, row.result]))]),
          (applied) => staleLeases(rows, applied)
        ),
      completeAndDelete: (leases) =>
        Effect.map(
          relaxed.values(completeAndDeleteSql, [JSON.stringify(leases.map((lease) => [Number(lease.id), lease.token]))]),
          (applied) => staleLeases(leases, applied)
        ),
      settle: (rows, now) => relaxed.rows(settleSql, [now, JSON.stringify(rows)]),
      heartbeat: (leases, leaseExpiresAt) => relaxed.rows(heartbeatSql, [leaseExpiresAt, JSON.stringify(leases)]),
      rescue: (now) => relaxed.rows(rescueSql, [now, now, now, now]),
      get: (id) => q<JobRow>(`SELECT * FROM ${jobs} WHERE id = ?`, [id]),
      list,
      counts: q(`SELECT queue, state, count(*) AS count FROM ${jobs} GROUP BY queue, state`),
      finishedCounts: (since, bucketMillis) =>
        q(
          // Both operands integers: SQLite divides them as integers.
          `SELECT (finished_at / CAST(? AS INTEGER)) * CAST(? AS INTEGER) AS bucket, state, count(*) AS count FROM ${jobs}
           WHERE state IN ('completed', 'cancelled', 'discarded') AND finished_at >= ?
           GROUP BY 1, 2`,
          [bucketMillis, bucketMillis, since]
        ),
      cancel: (id, now) =>
        q<JobRow>(
          `UPDATE ${jobs} SET
             state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
             cancel_requested = (state = 'running'),
             finished_at = CASE WHEN state = 'running' THEN finished_at ELSE ? END,
             lease_expires_at = CASE WHEN state = 'running' THEN lease_expires_at ELSE NULL END
           WHERE id = ? AND state IN ${active}
           RETURNING *`,
          [now, id]
        ),
      retry: (id, now) =>
        q<JobRow>(
          `UPDATE ${jobs} AS j SET state = 'available', run_at = ?, finished_at = NULL, cancel_requested = 0,
             max_attempts = max(j.max_attempts, j.attempt + 1)
           WHERE j.id = ? AND j.state IN ('scheduled', 'available', 'retryable', 'cancelled', 'discarded')
             AND (j.unique_key IS NULL OR j.state IN ${active} OR NOT EXISTS (
               SELECT 1 FROM ${jobs} o WHERE o.unique_key = j.unique_key AND o.id <> j.id AND o.state IN ${active}))
           RETURNING *`,
          [now, id]
        ),
      prune: (before, limit) =>
        Effect.map(
          relaxed.rows(
            `DELETE FROM ${jobs} WHERE id IN (
               SELECT id FROM ${jobs} WHERE
                 (state = 'completed' AND finished_at < ?) OR (state = 'cancelled' AND finished_at < ?)
                 OR (state = 'discarded' AND finished_at < ?)
               LIMIT ?)
             RETURNING id`,
            [before.completed, before.cancelled, before.discarded, limit]
          ),
          (rows) => rows.length
        ),
      setQueuePaused: (queue, paused) =>
        Effect.asVoid(q(
          `INSERT INTO ${t("queues")} (name, paused) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused`,
          [queue, paused ? 1 : 0]
        )),
      pausedQueues: Effect.map(q<{ name: string }>(`SELECT name FROM ${t("queues")} WHERE paused ORDER BY name`), (rows) =>
        rows.map((row) => row.name)),
      advanceCronTick: (schedule, tick) =>
        Effect.map(
          q(
            `INSERT INTO ${t("cron_ticks")} (schedule, last_tick) VALUES (?, ?)
             ON CONFLICT (schedule) DO UPDATE SET last_tick = excluded.last_tick WHERE last_tick < excluded.last_tick
             RETURNING schedule`,
            [schedule, tick]
          ),
          (rows) => rows.length > 0
        ),
      cronLastTicks: q(`SELECT schedule, last_tick AS tick FROM ${t("cron_ticks")} ORDER BY schedule`),
      withTransaction: (effect) => retryBusy(sql.withTransaction(effect)),
      notifyWakeup: () => Effect.void,
      notifyCancel: () => Effect.void,
      signals: undefined
    }
    return dialect
  })
