import { readFileSync } from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { SqlClient, SqlError } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Option } from "effect"
import { StoreError } from "conveyor"
import * as Sqlite from "conveyor/sqlite"
import * as SqliteThread from "../src/stores/sql/sqliteThread.js"
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
