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
import { Clock, Context, Duration, Effect, Redacted, Schedule, type Scope } from "effect"
import Pg from "pg"

/** The pool `conveyor/pg` opened (beside the `PgClient` over it), and its single statements. */
export interface OwnPool {
  readonly pool: Pg.Pool
  /**
   * One statement straight on the pool, without the SQL client's per-statement machinery
   * (span, scope, connection effects): for the single-job statements of an enqueue, where that
   * machinery cost more than the driver's own work, and about half a millisecond of an idle
   * process's enqueue latency, measured. Only outside a transaction: the caller checks.
   */
  readonly query: <A>(
    text: string,
    values: ReadonlyArray<unknown>,
    rowMode?: "array"
  ) => Effect.Effect<ReadonlyArray<A>, SqlError>
}

export class PgPool extends Context.Tag("conveyor/PgPool")<PgPool, OwnPool>() {}

type Callback = (cause: Error | null | undefined, result: Pg.QueryResult | undefined) => void

/**
 * A connection kept out of the pool for single statements while it is free; one that finds it
 * busy goes through the pool. Checking a connection out of `pg-pool` and back (a tick, two
 * timers, listeners) cost an idle process about a tenth of a millisecond of its enqueue latency,
 * measured. It is taken when the pool has a connection to spare, given back after an error the
 * server did not report (the connection may be broken) or after a whole check interval unused
 * (see `releaseIfUnused`), and dropped if it fails while idle.
 */
const makeLane = (pool: Pg.Pool, maxConnections: number) => {
  let client: Pg.PoolClient | undefined
  let busy = false
  let acquiring = false
  let closed = false
  let usedSinceCheck = false
  const giveBack = (error?: Error) => {
    const held = client
    if (held === undefined) return
    client = undefined
    busy = false
    held.removeListener("error", giveBack)
    held.release(error)
  }
  const acquire = () => {
    if (acquiring || closed || (pool.idleCount === 0 && pool.totalCount >= maxConnections)) return
    acquiring = true
    pool.connect((error, connected, release) => {
      acquiring = false
      if (error || connected === undefined) return
      if (closed) return release()
      connected.on("error", giveBack)
      client = connected
    })
  }
  return {
    query: (config: Pg.QueryConfig, callback: Callback) => {
      const held = client
      if (held === undefined || busy) {
        if (held === undefined) acquire()
        return void pool.query(config, callback)
      }
      busy = true
      usedSinceCheck = true
      held.query(config, (cause: Error | null | undefined, result: Pg.QueryResult | undefined) => {
        busy = false
        // An error the server reported leaves the connection usable; any other may not.
        if (cause && !(cause instanceof Pg.DatabaseError)) giveBack(cause)
        else if (closed) giveBack()
        callback(cause, result)
      })
    },
    /** Called every check interval: gives the connection back if no statement used it since the last call. */
    releaseIfUnused: () => {
      if (!usedSinceCheck && !busy) giveBack()
      usedSinceCheck = false
    },
    close: () => {
      closed = true
      if (!busy) giveBack()
    }
  }
}

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

/** How often the single-statement connection is checked for use: `pg-pool`'s own idle timeout. */
const laneCheck = Duration.seconds(10)

/**
 * Open the pool and check that it connects, within the connect timeout; closed with the scope.
 * A pool of fewer than three connections keeps none out for single statements.
 */
export const makePool = (options: PoolOptions): Effect.Effect<OwnPool, SqlError, Scope.Scope> =>
  Effect.gen(function*() {
    const connectTimeout = Duration.decode(options.connectTimeout ?? Duration.seconds(5))
    const { lane, pool } = yield* Effect.acquireRelease(
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
        return { pool, lane: options.maxConnections >= 3 ? makeLane(pool, options.maxConnections) : undefined }
      }),
      ({ lane, pool }) =>
        Effect.suspend(() => {
          lane?.close()
          return Effect.promise(() => pool.end())
        }).pipe(Effect.timeoutOption(Duration.seconds(1)))
    )
    yield* Effect.tryPromise({
      try: () => pool.query("SELECT 1"),
      catch: (cause) => new SqlError({ cause, message: "PgClient: Failed to connect" })
    }).pipe(
      Effect.timeoutFail({
        duration: connectTimeout,
        onTimeout: () => new SqlError({ cause: new Error("Connection timed out"), message: "PgClient: Connection timed out" })
      })
    )
    if (lane !== undefined) {
      // Idleness is the connection's, in real time, whatever clock the application runs on
      // (a test's TestClock would run this check for every 10 s it skips).
      yield* Effect.sync(lane.releaseIfUnused).pipe(
        Effect.repeat(Schedule.spaced(laneCheck)),
        Effect.withClock(Clock.make()),
        Effect.forkScoped
      )
    }
    const send = lane === undefined ? (config: Pg.QueryConfig, callback: Callback) => void pool.query(config, callback) : lane.query
    return {
      pool,
      query: <A>(text: string, values: ReadonlyArray<unknown>, rowMode?: "array") =>
        Effect.async<ReadonlyArray<A>, SqlError>((resume) =>
          send(
            { text, values: values as Array<unknown>, ...(rowMode === undefined ? {} : { rowMode }) },
            (cause, result) =>
              resume(
                cause
                  ? Effect.fail(new SqlError({ cause, message: "Failed to execute statement" }))
                  : Effect.succeed((result?.rows ?? []) as ReadonlyArray<A>)
              )
          )
        )
    }
  })
