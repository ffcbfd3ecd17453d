import { readFileSync } from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { SqlClient, SqlError } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Option } from "effect"
import { JobStore, Settlement, SqlJobStore, StoreError } from "conveyor"
import * as Sqlite from "conveyor/sqlite"
import * as SqliteThread from "../src/stores/sql/sqliteThread.js"
import { insertOf } from "./conformance/jobStoreSuite.js"
import { freshSqliteFile, removeSqliteFile } from "./databases.js"

/** The thread client on a fresh file, removed afterwards. */
const threadLayer = () => {
  const file = freshSqliteFile("thread")
  return Layer.merge(
    SqliteThread.layer({ filename: file }),
    Layer.scopedDiscard(Effect.addFinalizer(() => Effect.sync(() => removeSqliteFile(file))))
  )
}

/** How often a 1 ms timer fires while a CPU-heavy query (millions of rows counted) runs. */
const ticksDuringLongQuery = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  let ticks = 0
  const ticker = yield* Effect.fork(Effect.forever(Effect.zipRight(Effect.sleep("1 millis"), Effect.sync(() => ticks++))))
  const rows = yield* sql<{ n: number }>`
    WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) AS n FROM c`
  const seen = ticks
  yield* Fiber.interrupt(ticker)
  assert.strictEqual(rows[0]!.n, 3000000)
  return seen
})

describe("SQLite connection in a worker thread", () => {
  it.live("leaves the event loop free while a statement runs", () =>
    Effect.gen(function*() {
      const inThread = yield* Effect.provide(ticksDuringLongQuery, threadLayer())
      assert.isAbove(inThread, 5)
      // The same query on the main thread stops every timer until it ends.
      const file = freshSqliteFile("main")
      const onMain = yield* Effect.provide(ticksDuringLongQuery, SqliteClient.layer({ filename: file }))
      removeSqliteFile(file)
      assert.isAtMost(onMain, 1)
    }))

  it.live("a failed statement carries SQLite's error code, and the connection goes on", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE t (id INTEGER PRIMARY KEY)`
      yield* sql`INSERT INTO t (id) VALUES (1)`
      const error = yield* Effect.flip(sql`INSERT INTO t (id) VALUES (1)`)
      assert.instanceOf(error, SqlError.SqlError)
      assert.strictEqual((error.cause as { code?: string }).code, "SQLITE_CONSTRAINT_PRIMARYKEY")
      const rows = yield* sql<{ n: number }>`SELECT count(*) AS n FROM t`
      assert.strictEqual(rows[0]!.n, 1)
    }).pipe(Effect.provide(threadLayer())))

  /**
   * Runs `other` in another fiber while a transaction that inserted row 1 into `t` is open:
   * `other` must still be waiting 30 ms later. The transaction then rolls back; `other`'s result.
   */
  const whileTransactionOpen = <A, E>(other: Effect.Effect<A, E>) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const inserted = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const transaction = yield* Effect.fork(
        sql.withTransaction(
          Effect.gen(function*() {
            yield* sql`INSERT INTO t (id) VALUES (1)`
            // The transaction's own statements run at once, whatever their form.
            assert.deepStrictEqual(yield* sql`SELECT id FROM t`.values, [[1]])
            yield* Deferred.succeed(inserted, undefined)
            yield* Deferred.await(gate)
            return yield* Effect.fail("roll back")
          })
        )
      )
      yield* Deferred.await(inserted)
      const waiting = yield* Effect.fork(other)
      yield* Effect.sleep("30 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiting)))
      yield* Deferred.succeed(gate, undefined)
      assert.isTrue(Exit.isFailure(yield* Fiber.await(transaction)))
      return yield* Fiber.join(waiting)
    })

  it.live("a transaction has the connection to itself until it ends", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE t (id INTEGER PRIMARY KEY)`
      // Another fiber's read waits for the transaction rather than seeing its uncommitted row.
      const rows = yield* whileTransactionOpen(sql<{ n: number }>`SELECT count(*) AS n FROM t`)
      assert.strictEqual(rows[0]!.n, 0)
    }).pipe(Effect.provide(threadLayer())))

  it.live("a direct statement waits for another fiber's transaction and is not rolled back with it", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const direct = SqliteThread.directStatements(sql)
      assert.isDefined(direct)
      yield* direct!.rows(`CREATE TABLE t (id INTEGER PRIMARY KEY)`, [])
      const written = yield* whileTransactionOpen(direct!.values(`INSERT INTO t (id) VALUES (?) RETURNING id`, [2]))
      assert.deepStrictEqual(written, [[2]])
      assert.deepStrictEqual(yield* direct!.rows(`SELECT id FROM t ORDER BY id`, []), [{ id: 2 }])
      // Only the thread's own client has them.
      const file = freshSqliteFile("main")
      const mainThread = yield* Effect.provide(SqlClient.SqlClient, SqliteClient.layer({ filename: file }))
      removeSqliteFile(file)
      assert.isUndefined(SqliteThread.directStatements(mainThread))
    }).pipe(Effect.provide(threadLayer())))

  it.live("commits sync the disk (synchronous FULL) except a relaxed statement's (NORMAL)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const direct = SqliteThread.directStatements(sql)!
      const synchronous = (relaxed?: boolean) =>
        Effect.map(direct.values(`PRAGMA synchronous`, [], relaxed), (rows) => rows[0]![0])
      assert.strictEqual(yield* synchronous(), 2)
      assert.strictEqual(yield* synchronous(true), 1)
      // The next statement that is not relaxed, the client's own included, syncs again.
      assert.deepStrictEqual(yield* sql`PRAGMA synchronous`.values, [[2]])
      assert.strictEqual(yield* synchronous(true), 1)
      assert.strictEqual(yield* synchronous(false), 2)
    }).pipe(Effect.provide(threadLayer())))

  it.live("the store syncs its enqueues, relaxes the worker's bookkeeping, and syncs a handed-over job before answering", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const direct = SqliteThread.directStatements(sql)!
      // What the store sends, seen on the client's direct statements, in order.
      const sent: Array<{ readonly statement: string; readonly relaxed: boolean }> = []
      const seen = (statement: string, relaxed: boolean | undefined) =>
        sent.push({ statement: statement.trim().split(/\s+/).slice(0, 2).join(" "), relaxed: relaxed === true })
      Object.assign(sql, {
        [Symbol.for("conveyor/SqliteThread/direct")]: {
          rows: (statement: string, params: ReadonlyArray<unknown>, relaxed?: boolean) => (
            seen(statement, relaxed), direct.rows(statement, params, relaxed)
          ),
          values: (statement: string, params: ReadonlyArray<unknown>, relaxed?: boolean) => (
            seen(statement, relaxed), direct.values(statement, params, relaxed)
          ),
          sync: Effect.tap(direct.sync, () => void seen("SYNCED", false))
        }
      })
      const context = yield* Layer.build(SqlJobStore.layer())
      const store = Context.get(context, JobStore)
      assert.deepStrictEqual(yield* sql`PRAGMA synchronous`.values, [[2]])
      sent.length = 0
      yield* store.insert([insertOf("durable", { runAt: Date.now() })])
      const { jobs } = yield* store.claim({ workerId: "w", queues: [{ queue: "durable", limit: 10 }], leaseDuration: Duration.seconds(30) })
      yield* store.heartbeat(jobs.map((job) => ({ id: job.id, token: job.leaseToken })), Duration.seconds(30))
      yield* store.settle(jobs.map((job) => Settlement.Complete({ id: job.id, token: job.leaseToken, result: null })))
      yield* store.rescue
      const inserts = sent.filter((s) => s.statement.startsWith("INSERT"))
      const updates = sent.filter((s) => s.statement.startsWith("UPDATE"))
      assert.strictEqual(inserts.length, 1)
      assert.isFalse(inserts[0]!.relaxed)
      // The claim, the heartbeat, the completion and the rescue.
      assert.isAtLeast(updates.length, 4)
      assert.isTrue(updates.every((s) => s.relaxed))

      // A single job handed to a local worker: inserted relaxed, handed over, synced, answered.
      const handed: Array<string> = []
      yield* store.registerLocalWorker({
        workerId: "local",
        leaseDuration: Duration.seconds(30),
        reserve: () => ({ count: 1, take: () => Effect.sync(() => void handed.push("TAKEN")), cancel: () => {} })
      })
      sent.length = 0
      yield* store.insert([insertOf("durable", { runAt: Date.now() })])
      seen("ANSWERED", false)
      assert.deepStrictEqual(handed, ["TAKEN"])
      assert.deepStrictEqual(sent, [
        { statement: "INSERT INTO", relaxed: true },
        { statement: "SYNCED", relaxed: false },
        { statement: "ANSWERED", relaxed: false }
      ])
      // A batch commits synced.
      sent.length = 0
      yield* store.insert([insertOf("durable", { runAt: Date.now() }), insertOf("durable", { runAt: Date.now() })])
      assert.deepStrictEqual(sent, [{ statement: "INSERT INTO", relaxed: false }])
    }).pipe(Effect.scoped, Effect.provide(threadLayer())))

  it.live("a sync answers on a file with WAL, without WAL, and in memory", () =>
    Effect.gen(function*() {
      for (const options of [{}, { disableWAL: true }]) {
        const file = freshSqliteFile("sync")
        const rows = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`CREATE TABLE t (id INTEGER PRIMARY KEY)`
          yield* SqliteThread.directStatements(sql)!.values(`INSERT INTO t (id) VALUES (1)`, [], true)
          yield* SqliteThread.directStatements(sql)!.sync
          return yield* sql`SELECT id FROM t`.values
        }).pipe(Effect.provide(SqliteThread.layer({ filename: file, ...options })))
        removeSqliteFile(file)
        assert.deepStrictEqual(rows, [[1]])
      }
      const memory = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => SqliteThread.directStatements(sql)!.sync).pipe(
        Effect.provide(SqliteThread.layer({ filename: ":memory:" }))
      )
      assert.isUndefined(memory)
    }))

  it.live("a store on another client syncs every commit", () =>
    Effect.gen(function*() {
      const file = freshSqliteFile("main")
      const synchronous = yield* Effect.gen(function*() {
        yield* Layer.build(SqlJobStore.layer())
        return yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`PRAGMA synchronous`.values)
      }).pipe(Effect.scoped, Effect.provide(SqliteClient.layer({ filename: file })))
      removeSqliteFile(file)
      assert.deepStrictEqual(synchronous, [[2]])
    }))

  it.live("reads large integers exactly when asked to, and answers raw values", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const exact = yield* sql<{ big: bigint }>`SELECT 9007199254740993 AS big`.pipe(
        Effect.provideService(SqlClient.SafeIntegers, true)
      )
      assert.strictEqual(exact[0]!.big, 9007199254740993n)
      const values = yield* sql`SELECT 1 AS a, 'two' AS b`.values
      assert.deepStrictEqual(values, [[1, "two"]])
    }).pipe(Effect.provide(threadLayer())))

  it.live("exports and backs up the database", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const client = yield* SqliteClient.SqliteClient
      yield* sql`CREATE TABLE t (id INTEGER PRIMARY KEY)`
      const image = yield* client.export
      assert.strictEqual(Buffer.from(image.subarray(0, 15)).toString(), "SQLite format 3")
      const copy = Path.join(Os.tmpdir(), `conveyor-backup-${process.pid}-${Date.now()}.db`)
      yield* client.backup(copy)
      assert.strictEqual(readFileSync(copy).subarray(0, 15).toString(), "SQLite format 3")
      removeSqliteFile(copy)
    }).pipe(Effect.provide(threadLayer())))

  it.live("a file that cannot be opened fails the store's layer with a StoreError", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Layer.build(Sqlite.layerWith({ filename: Path.join(Os.tmpdir(), "no-such-directory", "x", "jobs.db") })).pipe(
          Effect.scoped
        )
      )
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
        assert.instanceOf(error, StoreError)
        assert.strictEqual((error as StoreError).op, "open")
      }
    }))
})
