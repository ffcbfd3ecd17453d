/**
 * `conveyor/database`: the store the environment asks for. PostgreSQL when `DATABASE_URL` is
 * set, otherwise the embedded SQLite file (`CONVEYOR_SQLITE_FILE`, default `conveyor.db`).
 */
import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { type ConfigError, Effect, Layer } from "effect"
import type { StoreError } from "./Errors.js"
import type { JobClient } from "./JobClient.js"
import type { JobStore } from "./JobStore.js"
import * as Pg from "./pg.js"
import * as Sqlite from "./sqlite.js"

export const layer: Layer.Layer<JobStore | JobClient | SqlClient.SqlClient, StoreError | SqlError | ConfigError.ConfigError> =
  Layer.unwrapEffect(
    Effect.map(Pg.configured, (usePg): Layer.Layer<JobStore | JobClient | SqlClient.SqlClient, StoreError | SqlError | ConfigError.ConfigError> =>
      usePg ? Pg.layer : Sqlite.layer)
  )
