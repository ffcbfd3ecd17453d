/**
 * The SQL job store over your own `SqlClient` (`@effect/sql`): PostgreSQL or SQLite, chosen by
 * the client's dialect. It migrates itself when the layer is built (numbered, forward-only
 * migrations under a lock, so many workers may start at once) and keeps its tables under a
 * PostgreSQL schema or a SQLite table prefix, so several apps can share one database.
 *
 * Enqueueing through a store built on the same client your application uses is transactional:
 * inside `sql.withTransaction`, the job commits or rolls back with your own writes.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as PgClient from "@effect/sql-pg/PgClient"
import { Context, Effect, Layer, Option } from "effect"
import { StoreError } from "./Errors.js"
import { JobStore } from "./JobStore.js"
import type { Dialect } from "./stores/sql/dialect.js"
import { makeSqlStore } from "./stores/sql/store.js"
import { tracedStore } from "./internal/tracedStore.js"

export interface SqlJobStoreOptions {
  /** PostgreSQL schema for the tables. Default `"conveyor"`. */
  readonly schema?: string
  /** SQLite table name prefix. Default `"conveyor_"`. */
  readonly prefix?: string
  /** Apply pending migrations when the layer is built. Default true. */
  readonly migrate?: boolean
}

/**
 * The PostgreSQL client's tag, by its key: looking it up must not load the PostgreSQL driver
 * into a process that runs on SQLite. The dialects are loaded on demand for the same reason.
 */
const PgClientTag = Context.GenericTag<PgClient.PgClient>("@effect/sql-pg/PgClient")

/** Schema names and prefixes become identifiers: a narrow pattern keeps them plain. */
const identifierPattern = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/

const dialectFor = (options: SqlJobStoreOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const pg = yield* Effect.serviceOption(PgClientTag)
    const schema = options.schema ?? "conveyor"
    const prefix = options.prefix ?? "conveyor_"
    for (const [what, value] of [["schema", schema], ["prefix", prefix]] as const) {
      if (!identifierPattern.test(value)) {
        return yield* new StoreError({ op: "configure", cause: new Error(`invalid ${what} ${JSON.stringify(value)}`) })
      }
    }
    type Make = Effect.Effect<Dialect, StoreError, SqlClient.SqlClient>
    return yield* sql.onDialectOrElse<Make, Make, Make>({
      pg: () =>
        Option.match(pg, {
          onNone: () =>
            Effect.fail(new StoreError({ op: "configure", cause: new Error("the PostgreSQL store needs a PgClient") })),
          onSome: (client) =>
            Effect.promise(() => import("./stores/sql/pg.js")).pipe(
              Effect.flatMap(({ makePgDialect }) => Effect.provideService(makePgDialect(schema), PgClientTag, client))
            )
        }),
      sqlite: () =>
        Effect.promise(() => import("./stores/sql/sqlite.js")).pipe(
          Effect.flatMap(({ makeSqliteDialect }) => makeSqliteDialect(prefix)),
          Effect.mapError((cause) => new StoreError({ op: "configure", cause }))
        ),
      orElse: () => Effect.fail(new StoreError({ op: "configure", cause: new Error("unsupported SQL dialect") }))
    })
  })

export const make = (options: SqlJobStoreOptions = {}) =>
  Effect.gen(function*() {
    const dialect = yield* dialectFor(options)
    if (options.migrate !== false) {
      const applied = yield* Effect.mapError(dialect.migrate, (cause) => new StoreError({ op: "migrate", cause }))
      if (applied.length > 0) {
        yield* Effect.logInfo(`applied migrations: ${applied.map((m) => `${m.id}_${m.name}`).join(", ")}`).pipe(
          Effect.annotateLogs({ module: "JobStore" })
        )
      }
    }
    // Traced here, once, at the boundary: the dialects stay free of telemetry.
    return tracedStore(yield* makeSqlStore(dialect), { system: dialect.name === "pg" ? "postgresql" : "sqlite" })
  })

/** The job store over the `SqlClient` in context. */
export const layer = (options: SqlJobStoreOptions = {}): Layer.Layer<JobStore, StoreError, SqlClient.SqlClient> =>
  Layer.scoped(JobStore, make(options))

/** Apply pending migrations and report what was applied (for tools: `conveyor migrate`). */
export const migrate = (options: SqlJobStoreOptions = {}) =>
  Effect.flatMap(dialectFor(options), (dialect) =>
    Effect.mapError(dialect.migrate, (cause) => new StoreError({ op: "migrate", cause })))
