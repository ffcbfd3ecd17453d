/**
 * `conveyor/database`: the store the environment asks for. PostgreSQL when `DATABASE_URL` is
 * set, otherwise the embedded SQLite file (`CONVEYOR_SQLITE_FILE`, default `conveyor.db`).
 * Only the chosen driver is loaded.
 */
import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Config, type ConfigError, Effect, Layer, Option } from "effect"
import type { StoreError } from "./Errors.js"
import type { JobClient } from "./JobClient.js"
import type { JobStore } from "./JobStore.js"

export type Services = JobStore | JobClient | SqlClient.SqlClient

/** Whether `DATABASE_URL` is set. */
export const usesPostgres: Effect.Effect<boolean> = Effect.map(
  Effect.orElseSucceed(Config.option(Config.redacted("DATABASE_URL")), () => Option.none()),
  Option.isSome
)

export const layer: Layer.Layer<Services, StoreError | SqlError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.flatMap(usesPostgres, (postgres) =>
    postgres
      ? Effect.promise(() => import("./pg.js")).pipe(Effect.map((Pg): Layer.Layer<Services, StoreError | SqlError | ConfigError.ConfigError> => Pg.layer))
      : Effect.promise(() => import("./sqlite.js")).pipe(Effect.map((Sqlite): Layer.Layer<Services, StoreError | SqlError | ConfigError.ConfigError> => Sqlite.layer)))
)
