/**
 * `conveyor/sqlite`: the embedded default. A SQLite file next to the app, no set-up; several
 * processes on one machine may share the file.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Config, type ConfigError, Effect, Layer } from "effect"
import type { StoreError } from "./Errors.js"
import { JobClient, type JobClientOptions } from "./JobClient.js"
import type { JobStore } from "./JobStore.js"
import * as SqlJobStore from "./SqlJobStore.js"

export interface SqliteStoreOptions extends SqlJobStore.SqlJobStoreOptions, JobClientOptions {
  readonly filename: string
}

export type Services = JobStore | JobClient | SqlClient.SqlClient | SqliteClient.SqliteClient

/** The store, a client, and the SQLite `SqlClient` itself (for your own transactional writes). */
export const layerWith = (options: SqliteStoreOptions): Layer.Layer<Services, StoreError | ConfigError.ConfigError> =>
  JobClient.layerWith(options).pipe(
    Layer.provideMerge(SqlJobStore.layer(options)),
    Layer.provideMerge(SqliteClient.layer({ filename: options.filename }))
  )

/** The file name from `CONVEYOR_SQLITE_FILE`, default `conveyor.db`. */
export const filename: Config.Config<string> = Config.string("CONVEYOR_SQLITE_FILE").pipe(
  Config.withDefault("conveyor.db"),
  Config.withDescription("SQLite database file for the job store")
)

/** The store on the file named by `CONVEYOR_SQLITE_FILE` (default `conveyor.db`). */
export const layer: Layer.Layer<Services, StoreError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(filename, (file) => layerWith({ filename: file }))
)
