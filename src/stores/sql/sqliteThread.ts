/**
 * A SQLite `SqlClient` whose one connection lives in a worker thread, so statements run beside
 * the event loop instead of on it: a claim or a batch of settlements no longer stops the
 * runners while it executes, and waiting for another process's write lock (`busy_timeout`)
 * sleeps in the thread, not in the application.
 *
 * Statements run one at a time in the order they are sent, on one connection; a transaction
 * holds the connection until it ends, as with `@effect/sql-sqlite-node`'s client, whose
 * statement compiler and service tag this client shares.
 */
import { createRequire } from "node:module"
import { Worker } from "node:worker_threads"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Client from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { Context, Effect, Layer, Scope } from "effect"

export interface SqliteThreadOptions {
  readonly filename: string
  /** Off: rollback journal instead of WAL (several processes on one file need WAL). */
  readonly disableWAL?: boolean
  /** Prepared statements kept per connection. */
  readonly prepareCacheSize?: number
}

/** What the thread is asked to do. */
const Op = {
  open: 0,
  rows: 1,
  values: 2,
  run: 3,
  unprepared: 4,
  export: 5,
  backup: 6,
  loadExtension: 7,
  close: 8,
  sync: 9
} as const
type Op = typeof Op[keyof typeof Op]

/**
 * The thread's side, evaluated as a script in the thread. Kept as source text rather than a
 * function's `toString()`: TypeScript loaders may add helpers to a function's body that do not
 * exist in the thread.
 */
const threadSource = `
const { parentPort, workerData } = require("node:worker_threads")
const fs = require("node:fs")
const Database = require(workerData.driver)
let db
// The file whose sync makes the last commits durable (the WAL, in WAL mode), opened on first use.
let syncFd
const cache = new Map()
const prepare = (sql) => {
  let statement = cache.get(sql)
  if (statement === undefined) {
    statement = db.prepare(sql)
    if (cache.size >= workerData.cacheSize) cache.delete(cache.keys().next().value)
    cache.set(sql, statement)
  }
  return statement
}
const fail = (id, error) => parentPort.postMessage([id, false, {
  name: error && error.name, message: error && error.message !== undefined ? error.message : String(error), code: error && error.code
}])
// Commits sync the disk (synchronous = FULL) but those of statements sent relaxed (NORMAL).
// Set with exec each time: a prepared PRAGMA acts when prepared, and not reliably when run.
let relaxed = false
parentPort.on("message", ([id, op, sql, params, safeIntegers, relax]) => {
  try {
    let result
    switch (op) {
      case ${Op.open}:
        db = new Database(workerData.filename)
        if (workerData.wal) db.pragma("journal_mode = WAL")
        db.exec("PRAGMA synchronous = FULL")
        break
      case ${Op.rows}: case ${Op.values}: case ${Op.run}: case ${Op.unprepared}: {
        if (relax !== relaxed) {
          relaxed = relax
          db.exec(relax ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL")
        }
        const statement = op === ${Op.unprepared} ? db.prepare(sql) : prepare(sql)
        statement.safeIntegers(safeIntegers)
        if (statement.reader) {
          statement.raw(op === ${Op.values})
          result = statement.all(...params)
        } else {
          const info = statement.run(...params)
          result = op === ${Op.run} ? info : []
        }
        break
      }
      case ${Op.export}:
        result = db.serialize()
        break
      case ${Op.backup}:
        db.backup(sql).then((metadata) => parentPort.postMessage([id, true, metadata]), (error) => fail(id, error))
        return
      case ${Op.loadExtension}:
        db.loadExtension(sql)
        cache.clear()
        break
      case ${Op.sync}:
        // What a commit with synchronous = FULL waits for: the WAL's frames on disk (the
        // database file's pages, without WAL). A database in memory has nothing to sync.
        if (db.memory) break
        if (syncFd === undefined) syncFd = fs.openSync(workerData.wal ? db.name + "-wal" : db.name, "r")
        fs.fsyncSync(syncFd)
        break
      case ${Op.close}:
        cache.clear()
        if (syncFd !== undefined) fs.closeSync(syncFd)
        if (db !== undefined) db.close()
        break
    }
    parentPort.postMessage([id, true, result])
  } catch (error) {
    fail(id, error)
  }
})
`

type Reply = readonly [id: number, ok: boolean, value: unknown]

/**
 * Statements straight on the thread's connection, without the SQL client's per-statement
 * machinery (span, scope, compiler, connection effects): that machinery allocated about 60 KB
 * and took more time than the thread's own work per statement, measured, so an idle worker's
 * poll and a single enqueue paid mostly for it. Only outside a transaction: the caller checks.
 *
 * The connection's commits sync the disk before they answer (`synchronous = FULL`); a statement
 * sent `relaxed` commits without the sync (`NORMAL`: safe across a crash of the application, not
 * of the machine), for writes that may be forgotten by a power cut, or that `sync` makes durable
 * later.
 */
export interface DirectStatements {
  readonly rows: <A extends object>(
    sql: string,
    params: ReadonlyArray<unknown>,
    relaxed?: boolean
  ) => Effect.Effect<ReadonlyArray<A>, SqlError>
  readonly values: (
    sql: string,
    params: ReadonlyArray<unknown>,
    relaxed?: boolean
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
  /** Makes every commit so far durable, as if each had synced the disk. */
  readonly sync: Effect.Effect<void, SqlError>
}

// Kept on the client object itself, so a store finds them only on the client it was given.
const directKey = Symbol.for("conveyor/SqliteThread/direct")

/** The direct statements of a client this module made; `undefined` for any other client. */
export const directStatements = (client: Client.SqlClient): DirectStatements | undefined =>
  (client as unknown as { readonly [directKey]?: DirectStatements })[directKey]

/** The thread's error, rebuilt with the fields callers test (SQLite's `code`, e.g. SQLITE_BUSY). */
const rebuildError = (value: unknown): Error => {
  const { code, message, name } = (value ?? {}) as { name?: string; message?: string; code?: string }
  const error = new Error(message ?? "unknown SQLite error") as Error & { code?: string }
  if (name !== undefined) error.name = name
  if (code !== undefined) error.code = code
  return error
}

const driverPath = () => createRequire(import.meta.url).resolve("better-sqlite3")

export const make = (options: SqliteThreadOptions): Effect.Effect<SqliteClient.SqliteClient, SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const worker = new Worker(threadSource, {
      eval: true,
      workerData: {
        filename: options.filename,
        driver: driverPath(),
        wal: options.disableWAL !== true,
        cacheSize: options.prepareCacheSize ?? 200
      }
    })
    const pending = new Map<number, (ok: boolean, value: unknown) => void>()
    let nextId = 0
    /** Once the thread is gone, every request fails with this. */
    let gone: SqlError | undefined
    const settleAll = (error: SqlError) => {
      gone ??= error
      for (const resume of pending.values()) resume(false, error)
      pending.clear()
      worker.unref()
    }
    worker.on("message", ([id, ok, value]: Reply) => {
      const resume = pending.get(id)
      if (resume === undefined) return
      pending.delete(id)
      // The thread keeps the process alive only while a statement is in flight.
      if (pending.size === 0) worker.unref()
      resume(ok, value)
    })
    worker.on("error", (cause) => settleAll(new SqlError({ cause, message: "SQLite thread failed" })))
    worker.on("exit", (code) => settleAll(new SqlError({ cause: code, message: `SQLite thread exited (${code})` })))
    worker.unref()

    const request = (op: Op, sql: string, params: ReadonlyArray<unknown>, message: string, relaxed = false) =>
      Effect.withFiberRuntime<unknown, SqlError>((fiber) => {
        const safeIntegers = Context.get(fiber.currentContext, Client.SafeIntegers)
        return Effect.async<unknown, SqlError>((resume) => {
          if (gone !== undefined) return resume(Effect.fail(gone))
          const id = nextId++
          pending.set(id, (ok, value) =>
            resume(
              ok
                ? Effect.succeed(value)
                : Effect.fail(value instanceof SqlError ? value : new SqlError({ cause: rebuildError(value), message }))
            ))
          if (pending.size === 1) worker.ref()
          worker.postMessage([id, op, sql, params, safeIntegers, relaxed])
          // Interrupted: the statement still runs (and a transaction's rollback queues behind it);
          // only its answer is dropped.
          return Effect.sync(() => {
            if (pending.delete(id) && pending.size === 0) worker.unref()
          })
        })
      })

    yield* Effect.acquireRelease(
      request(Op.open, "", [], `Failed to open SQLite database ${options.filename}`),
      () =>
        Effect.zipRight(
          Effect.ignore(request(Op.close, "", [], "Failed to close SQLite database")),
          Effect.promise(() => worker.terminate())
        )
    ).pipe(Effect.onError(() => Effect.promise(() => worker.terminate())))

    const execute = "Failed to execute statement"
    /** Rows as objects, through the client's row transform when it has one. */
    const rows = (
      op: typeof Op.rows | typeof Op.unprepared,
      sql: string,
      params: ReadonlyArray<unknown>,
      transformRows: (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
    ) => {
      const answer = request(op, sql, params, execute) as Effect.Effect<ReadonlyArray<object>, SqlError>
      return transformRows === undefined ? answer : Effect.map(answer, transformRows)
    }
    const connection: Connection = {
      execute: (sql, params, transformRows) => rows(Op.rows, sql, params, transformRows),
      executeRaw: (sql, params) => request(Op.run, sql, params, execute),
      executeValues: (sql, params) =>
        request(Op.values, sql, params, execute) as Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>,
      executeUnprepared: (sql, params, transformRows) => rows(Op.unprepared, sql, params ?? [], transformRows),
      executeStream: () => Effect.dieMessage("executeStream is not implemented for SQLite") as never
    }

    // One connection: a transaction takes it until it ends, and other statements wait meanwhile.
    const semaphore = yield* Effect.makeSemaphore(1)
    const acquirer = semaphore.withPermits(1)(Effect.succeed(connection))
    const transactionAcquirer = Effect.uninterruptibleMask((restore) =>
      Effect.as(
        Effect.zipRight(
          restore(semaphore.take(1)),
          Effect.tap(Effect.scope, (scope) => Scope.addFinalizer(scope, semaphore.release(1)))
        ),
        connection
      )
    )
    const client = yield* Client.make({
      acquirer,
      compiler: Statement.makeCompilerSqlite(),
      transactionAcquirer,
      spanAttributes: [["db.system.name", "sqlite"]]
    })
    const whenFree = <A>(effect: Effect.Effect<A, SqlError>) => Effect.zipRight(acquirer, effect)
    // Waits for the connection like any statement, so it never runs inside another fiber's transaction.
    const direct: DirectStatements = {
      rows: <A extends object>(sql: string, params: ReadonlyArray<unknown>, relaxed?: boolean) =>
        whenFree(request(Op.rows, sql, params, execute, relaxed) as Effect.Effect<ReadonlyArray<A>, SqlError>),
      values: (sql, params, relaxed) =>
        whenFree(
          request(Op.values, sql, params, execute, relaxed) as Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError>
        ),
      // No need to wait for the connection: a sync inside a transaction syncs what was committed.
      sync: Effect.asVoid(request(Op.sync, "", [], "Failed to sync the database to disk"))
    }
    // The sqlite-node service's shape, so code written against `SqliteClient` works unchanged.
    return Object.assign(client, {
      [directKey]: direct,
      [SqliteClient.TypeId]: SqliteClient.TypeId,
      config: { filename: options.filename, ...(options.disableWAL === undefined ? {} : { disableWAL: options.disableWAL }) },
      export: whenFree(request(Op.export, "", [], "Failed to export database") as Effect.Effect<Uint8Array, SqlError>),
      backup: (destination: string) =>
        whenFree(request(Op.backup, destination, [], "Failed to backup database") as Effect.Effect<
          SqliteClient.BackupMetadata,
          SqlError
        >),
      loadExtension: (path: string) => whenFree(Effect.asVoid(request(Op.loadExtension, path, [], "Failed to load extension")))
    }) as unknown as SqliteClient.SqliteClient
  })

/** `SqlClient` and `SqliteClient` on a connection in a worker thread. */
export const layer = (options: SqliteThreadOptions): Layer.Layer<SqliteClient.SqliteClient | Client.SqlClient, SqlError> =>
  Layer.scopedContext(
    Effect.map(make(options), (client) => Context.make(SqliteClient.SqliteClient, client).pipe(Context.add(Client.SqlClient, client)))
  ).pipe(Layer.provide(Reactivity.layer))
