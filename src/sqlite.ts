/**
 * `conveyor/sqlite`: the embedded default. A SQLite file next to the app, no set-up; several
 * processes on one machine may share the file. The connection lives in a worker thread, so
 * statements do not hold up the event loop (`thread: false` keeps it on the main thread).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Config, type ConfigError, Effect, Layer } from "effect"
import { StoreError } from "./Errors.js"
import { JobClient, type JobClientOptions } from "./JobClient.js"
import type { JobStore } from "./JobStore.js"
import * as SqlJobStore from "./SqlJobStore.js"
import * as SqliteThread from "./stores/sql/sqliteThread.js"

export interface SqliteStoreOptions extends SqlJobStore.SqlJobStoreOptions, JobClientOptions {
  readonly filename: string
  /**
   * Run the connection in a worker thread (default): claims and settlements execute beside the
   * runners instead of between them, and a wait for another process's write lock does not
   * block the event loop. `false`: `@effect/sql-sqlite-node`'s client on the main thread.
   */
  readonly thread?: boolean
}

export type Services = JobStore | JobClient | SqlClient.SqlClient | SqliteClient.SqliteClient

/** The store, a client, and the SQLite `SqlClient` itself (for your own transactional writes). */
export const layerWith = (options: SqliteStoreOptions): Layer.Layer<Services, StoreError | ConfigError.ConfigError> => {
  const connection: Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient, StoreError | ConfigError.ConfigError> =
    options.thread === false
      ? SqliteClient.layer({ filename: options.filename })
      : Layer.mapError(SqliteThread.layer({ filename: options.filename }), (cause) => new StoreError({ op: "open", cause }))
  return JobClient.layerWith(options).pipe(
    Layer.provideMerge(SqlJobStore.layer(options)),
    Layer.provideMerge(connection)
  )
}

/** The file name from `CONVEYOR_SQLITE_FILE`, default `conveyor.db`. */
export const filename: Config.Config<string> = Config.string("CONVEYOR_SQLITE_FILE").pipe(
  Config.withDefault("conveyor.db"),
  Config.withDescription("SQLite database file for the job store")
)

/** Whether the connection runs in a worker thread: `CONVEYOR_SQLITE_THREAD`, default true. */
export const thread: Config.Config<boolean> = Config.boolean("CONVEYOR_SQLITE_THREAD").pipe(
  Config.withDefault(true),
  Config.withDescription("Run the SQLite connection in a worker thread")
)

/** The store on the file named by `CONVEYOR_SQLITE_FILE` (default `conveyor.db`). */
export const layer: Layer.Layer<Services, StoreError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(Config.all([filename, thread]), ([file, inThread]) => layerWith({ filename: file, thread: inThread }))
)
