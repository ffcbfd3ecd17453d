/**
 * Which store the CLI talks to: `--database-url`, else `DATABASE_URL`, else the embedded SQLite
 * file (`CONVEYOR_SQLITE_FILE`, default `conveyor.db`). A `postgres://` or `postgresql://` URL
 * means PostgreSQL (tables in `CONVEYOR_PG_SCHEMA`, default `conveyor`); `sqlite:<file>` names
 * a SQLite file.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Config, type ConfigError, Effect, Layer, Option, Redacted, Schema } from "effect"
import type { StoreError } from "../Errors.js"
import { JobClient } from "../JobClient.js"
import type { JobStore } from "../JobStore.js"
import * as SqlJobStore from "../SqlJobStore.js"
import * as Sqlite from "../sqlite.js"

/** The database URL or file could not be used. */
export class BadDatabaseUrl extends Schema.TaggedError<BadDatabaseUrl>()("BadDatabaseUrl", {
  reason: Schema.String
}) {
  override get message() {
    return `bad database URL: ${this.reason}`
  }
}

export interface StoreTarget {
  readonly kind: "pg" | "sqlite"
  /** For messages: never the password. */
  readonly description: string
  readonly client: Layer.Layer<SqlClient.SqlClient, unknown>
  readonly options: SqlJobStore.SqlJobStoreOptions
}

const describePg = (url: string) => {
  try {
    const parsed = new URL(url)
    return `PostgreSQL ${parsed.hostname}${parsed.port === "" ? "" : `:${parsed.port}`}${parsed.pathname}`
  } catch {
    return "PostgreSQL"
  }
}

/** Where the store lives, from the URL given (or the environment). */
export const targetFor = (url: Option.Option<Redacted.Redacted>): Effect.Effect<StoreTarget, BadDatabaseUrl | ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const chosen = Option.isSome(url) ? url : yield* Config.option(Config.redacted("DATABASE_URL"))
    if (Option.isNone(chosen)) {
      const filename = yield* Sqlite.filename
      return sqliteTarget(filename)
    }
    const text = Redacted.value(chosen.value).trim()
    if (/^postgres(ql)?:\/\//i.test(text)) {
      const schema = yield* Config.string("CONVEYOR_PG_SCHEMA").pipe(Config.withDefault("conveyor"))
      return {
        kind: "pg",
        description: `${describePg(text)} (schema ${schema})`,
        // The PostgreSQL driver is loaded only for a PostgreSQL store.
        client: Layer.unwrapEffect(Effect.map(
          Effect.promise(() => import("@effect/sql-pg/PgClient")),
          (PgClient) => PgClient.layer({ url: Redacted.make(text), maxConnections: 2, applicationName: "conveyor-cli" })
        )),
        options: { schema }
      } satisfies StoreTarget
    }
    const sqlite = /^(sqlite|file):(\/\/)?(.+)$/i.exec(text)
    if (sqlite !== null) return sqliteTarget(sqlite[3]!)
    return yield* new BadDatabaseUrl({ reason: "use postgres://..., postgresql://... or sqlite:<file>" })
  })

const sqliteTarget = (filename: string): StoreTarget => ({
  kind: "sqlite",
  description: `SQLite ${filename}`,
  client: SqliteClient.layer({ filename }),
  options: {}
})

export type StoreServices = JobStore | JobClient | SqlClient.SqlClient

/** The store (migrated on start) and a client over it, for the URL given or the environment. */
export const storeLayerFor = (
  url: Option.Option<Redacted.Redacted>
): Layer.Layer<StoreServices, BadDatabaseUrl | ConfigError.ConfigError | StoreError | unknown> =>
  Layer.unwrapEffect(Effect.map(targetFor(url), (target) =>
    JobClient.layer.pipe(
      Layer.provideMerge(SqlJobStore.layer(target.options)),
      Layer.provideMerge(target.client)
    )))

/** Apply pending migrations; returns the target and the migrations applied now. */
export const migrate = Effect.fn("Cli.migrate")(function*(url: Option.Option<Redacted.Redacted>) {
  const target = yield* targetFor(url)
  const applied = yield* SqlJobStore.migrate(target.options).pipe(Effect.provide(target.client))
  return { target, applied }
})
