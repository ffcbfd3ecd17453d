/**
 * Real databases for the tests: a fresh SQLite file, and a fresh PostgreSQL schema (dropped
 * afterwards) in the database CI provides, so test files never see each other's jobs.
 */
import * as Os from "node:os"
import * as Path from "node:path"
import { rmSync } from "node:fs"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted } from "effect"
import { type JobStore, SqlJobStore } from "conveyor"
import * as SqliteThread from "../src/stores/sql/sqliteThread.js"

export const pgUrl = process.env.CONVEYOR_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

let counter = 0
const unique = (label: string) => `${label}_${process.pid}_${Date.now().toString(36)}_${counter++}`

export const freshSqliteFile = (label = "conveyor") => {
  const file = Path.join(Os.tmpdir(), `${unique(label)}.db`)
  return file
}

export const removeSqliteFile = (file: string) => {
  for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true })
}

export const freshSchema = (label = "conveyor") => unique(`${label}_test`).toLowerCase()

export const pgClientLayer = PgClient.layer({ url: Redacted.make(pgUrl), maxConnections: 12 })

/** Drops the schema when the layer is released. */
export const dropSchemaAfterwards = (schema: string) =>
  Layer.scopedDiscard(Effect.addFinalizer(() =>
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).pipe(Effect.ignore)
  ))

/**
 * A store on a fresh SQLite file, with the client it runs on: by default the one `conveyor/sqlite`
 * ships (its connection in a worker thread); `thread: false`, sqlite-node's on the main thread.
 */
export const sqliteStoreLayer = (
  file = freshSqliteFile(),
  options: { readonly thread?: boolean } = {}
): Layer.Layer<JobStore | SqlClient.SqlClient, unknown> => {
  const client: Layer.Layer<SqlClient.SqlClient, unknown> = options.thread === false
    ? SqliteClient.layer({ filename: file })
    : SqliteThread.layer({ filename: file })
  return SqlJobStore.layer().pipe(
    Layer.provideMerge(client),
    Layer.merge(Layer.scopedDiscard(Effect.addFinalizer(() => Effect.sync(() => removeSqliteFile(file)))))
  )
}

/** A store in a fresh PostgreSQL schema, with the client it runs on. */
export const pgStoreLayer = (schema = freshSchema()): Layer.Layer<JobStore | SqlClient.SqlClient, unknown> =>
  SqlJobStore.layer({ schema }).pipe(
    Layer.provideMerge(dropSchemaAfterwards(schema).pipe(Layer.provideMerge(pgClientLayer)))
  )
