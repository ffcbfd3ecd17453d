/**
 * `conveyor/pg`: PostgreSQL, for many worker processes on many machines. Workers are woken by
 * LISTEN/NOTIFY within milliseconds, claim with `FOR UPDATE SKIP LOCKED`, and reconnect after a
 * lost connection.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Config, type ConfigError, Effect, Layer, type Redacted } from "effect"
import type { StoreError } from "./Errors.js"
import { JobClient, type JobClientOptions } from "./JobClient.js"
import type { JobStore } from "./JobStore.js"
import * as SqlJobStore from "./SqlJobStore.js"
import { makePool, PgPool } from "./stores/sql/pgPool.js"

export interface PgStoreOptions extends SqlJobStore.SqlJobStoreOptions, JobClientOptions {
  readonly url: Redacted.Redacted
  /** Connections in the pool (a process running a worker uses one more, for LISTEN). Default 10. */
  readonly maxConnections?: number
  readonly applicationName?: string
  /**
   * Keep Conveyor's hot statements prepared on each connection (parsed and planned once).
   * Default true; turn off behind a pooler in transaction mode that cannot keep them
   * (PgBouncer before 1.21).
   */
  readonly preparedStatements?: boolean
}

export type Services = JobStore | JobClient | SqlClient.SqlClient | PgClient.PgClient

/** The store, a client, and the PostgreSQL `SqlClient` itself (for your own transactional writes). */
export const layerWith = (options: PgStoreOptions): Layer.Layer<Services, StoreError | SqlError> =>
  JobClient.layerWith(options).pipe(
    Layer.provideMerge(SqlJobStore.layer(options)),
    Layer.provideMerge(connection(options))
  )

/** A pool of our own (see `stores/sql/pgPool.ts`), and the `PgClient` over it. */
const connection = (options: PgStoreOptions) => {
  const applicationName = options.applicationName ?? "conveyor"
  const pool = Layer.scoped(
    PgPool,
    makePool({
      url: options.url,
      maxConnections: options.maxConnections ?? 10,
      applicationName,
      preparedStatements: options.preparedStatements ?? true
    })
  )
  const client = Layer.unwrapEffect(
    Effect.map(PgPool, ({ pool }) => PgClient.layerFromPool({ acquire: Effect.succeed(pool), applicationName }))
  )
  return Layer.provideMerge(client, pool)
}

export const config = Config.all({
  url: Config.redacted("DATABASE_URL").pipe(Config.withDescription("PostgreSQL connection URL")),
  schema: Config.string("CONVEYOR_PG_SCHEMA").pipe(Config.withDefault("conveyor")),
  maxConnections: Config.integer("CONVEYOR_PG_MAX_CONNECTIONS").pipe(Config.withDefault(10)),
  preparedStatements: Config.boolean("CONVEYOR_PG_PREPARED_STATEMENTS").pipe(Config.withDefault(true))
})

/** The store on `DATABASE_URL`, in schema `CONVEYOR_PG_SCHEMA` (default `conveyor`). */
export const layer: Layer.Layer<Services, StoreError | SqlError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config, (options) => layerWith(options))
)
