/**
 * The `pg` pool behind `conveyor/pg`, whose connections keep Conveyor's hot statements prepared.
 *
 * `@effect/sql-pg` sends every statement unnamed, so PostgreSQL parses and plans it on each call:
 * about a quarter of a single enqueue's round trip here, and more for the claim. Statements the
 * dialect marks with `prepared` are sent as named statements instead: each connection parses
 * one once and reuses its plan. Only marked statements are named, so a pool shared with the
 * application prepares nothing of the application's.
 */
import { SqlError } from "@effect/sql/SqlError"
import { Context, Duration, Effect, Redacted, type Scope } from "effect"
import Pg from "pg"

/** The pool `conveyor/pg` opened, beside the `PgClient` over it. */
export class PgPool extends Context.Tag("conveyor/PgPool")<PgPool, Pg.Pool>() {}

/**
 * One statement straight on the pool, without the SQL client's per-statement machinery (span,
 * scope, connection effects): for the single-job statements of an enqueue, where that machinery
 * cost more than the driver's own work, and about half a millisecond of an idle process's
 * enqueue latency, measured. Only outside a transaction: the caller checks.
 */
export const queryPool = <A>(
  pool: Pg.Pool,
  text: string,
  values: ReadonlyArray<unknown>,
  rowMode?: "array"
): Effect.Effect<ReadonlyArray<A>, SqlError> =>
  Effect.async<ReadonlyArray<A>, SqlError>((resume) => {
    pool.query(
      { text, values: values as Array<unknown>, ...(rowMode === undefined ? {} : { rowMode }) },
      (cause: Error | null | undefined, result: Pg.QueryResult | undefined) =>
        resume(
          cause
            ? Effect.fail(new SqlError({ cause, message: "Failed to execute statement" }))
            : Effect.succeed((result?.rows ?? []) as ReadonlyArray<A>)
        )
    )
  })

const marker = "/* conveyor:prepared */ "

/** Mark a statement whose text never changes to be prepared by the connections of this pool. */
export const prepared = (text: string): string => `${marker}${text}`

export interface PoolOptions {
  readonly url: Redacted.Redacted
  readonly maxConnections: number
  readonly applicationName: string
  /** Off for a connection pooler in transaction mode (PgBouncer before 1.21), which cannot keep named statements. */
  readonly preparedStatements: boolean
  readonly connectTimeout?: Duration.DurationInput
}

/** A `pg` client that sends marked statements as named ones, each name standing for one text. */
const preparingClient = (): typeof Pg.Client => {
  // Shared by the pool's connections, so a text has the same name on every connection; the
  // marked texts are a handful of constants per store.
  const names = new Map<string, string>()
  const nameOf = (text: string) => {
    let name = names.get(text)
    if (name === undefined) {
      name = `conveyor_${names.size + 1}`
      names.set(text, name)
    }
    return name
  }
  return class PreparingClient extends Pg.Client {
    // pg's `query` has many overloads; this one only rewrites a marked text into a named query.
    override query(config: any, values?: any, callback?: any): any {
      if (typeof config === "string" && config.startsWith(marker)) {
        config = { text: config, name: nameOf(config) }
      } else if (typeof config?.text === "string" && config.name === undefined && config.text.startsWith(marker)) {
        config = { ...config, name: nameOf(config.text) }
      }
      return super.query(config, values, callback)
    }
  }
}

/** Open the pool and check that it connects, within the connect timeout; closed with the scope. */
export const makePool = (options: PoolOptions): Effect.Effect<Pg.Pool, SqlError, Scope.Scope> => {
  const connectTimeout = Duration.decode(options.connectTimeout ?? Duration.seconds(5))
  return Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new Pg.Pool({
        connectionString: Redacted.value(options.url),
        max: options.maxConnections,
        application_name: options.applicationName,
        connectionTimeoutMillis: Duration.toMillis(connectTimeout),
        ...(options.preparedStatements ? { Client: preparingClient() } : {})
      })
      // Errors of idle connections surface on the next query instead; unhandled, they would crash the process.
      pool.on("error", () => {})
      return pool
    }),
    (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeoutOption(Duration.seconds(1)))
  ).pipe(
    Effect.tap((pool) =>
      Effect.tryPromise({
        try: () => pool.query("SELECT 1"),
        catch: (cause) => new SqlError({ cause, message: "PgClient: Failed to connect" })
      }).pipe(
        Effect.timeoutFail({
          duration: connectTimeout,
          onTimeout: () => new SqlError({ cause: new Error("Connection timed out"), message: "PgClient: Connection timed out" })
        })
      )
    )
  )
}
