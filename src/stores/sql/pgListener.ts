/**
 * LISTEN on a dedicated PostgreSQL connection that survives connection loss.
 *
 * The client of `@effect/sql-pg` keeps a listening connection but ignores its errors, so a
 * terminated backend silently ends all notifications. Here an error or end fails the stream,
 * and the retry opens a new connection and listens again. Each (re)connection emits
 * `Connected`, so the store can tell workers to poll for what they missed meanwhile, and each
 * loss `Disconnected`.
 */
import type { PgClientConfig } from "@effect/sql-pg/PgClient"
import { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect, Redacted, Schedule, Stream } from "effect"
import Pg from "pg"

export type ListenEvent = { readonly _tag: "Connected" } | { readonly _tag: "Disconnected" } | {
  readonly _tag: "Notification"
  readonly channel: string
  readonly payload: string
}

const clientConfig = (config: PgClientConfig): Pg.ClientConfig => ({
  ...(config.url === undefined ? {} : { connectionString: Redacted.value(config.url) }),
  ...(config.host === undefined ? {} : { host: config.host }),
  ...(config.port === undefined ? {} : { port: config.port }),
  ...(config.database === undefined ? {} : { database: config.database }),
  ...(config.username === undefined ? {} : { user: config.username }),
  ...(config.password === undefined ? {} : { password: Redacted.value(config.password) }),
  ...(config.ssl === undefined ? {} : { ssl: config.ssl }),
  ...(config.connectTimeout === undefined ? {} : { connectionTimeoutMillis: Duration.toMillis(Duration.decode(config.connectTimeout)) }),
  application_name: `${config.applicationName ?? "conveyor"}-listener`,
  // Notices a dead peer even when nothing is being sent.
  keepAlive: true
})

const listenOnce = (config: PgClientConfig, channels: ReadonlyArray<string>): Stream.Stream<ListenEvent, SqlError> =>
  Stream.asyncScoped<ListenEvent, SqlError>((emit) =>
    Effect.gen(function*() {
      const client = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const client = new Pg.Client(clientConfig(config))
            // Until the stream's handlers are attached, an error must not crash the process.
            client.on("error", () => {})
            await client.connect()
            return client
          },
          catch: (cause) => new SqlError({ cause, message: "could not open the listening connection" })
        }),
        (client) => Effect.promise(() => client.end().catch(() => undefined)).pipe(Effect.timeoutOption("1 second"))
      )
      client.on("notification", (message) => {
        if (message.payload !== undefined && channels.includes(message.channel)) {
          void emit.single({ _tag: "Notification", channel: message.channel, payload: message.payload })
        }
      })
      const lost = (error: SqlError) => {
        void emit.single({ _tag: "Disconnected" })
        void emit.fail(error)
      }
      client.on("error", (cause) => lost(new SqlError({ cause, message: "listening connection failed" })))
      client.on("end", () => lost(new SqlError({ cause: null, message: "listening connection ended" })))
      yield* Effect.tryPromise({
        try: () => client.query(channels.map((channel) => `LISTEN ${Pg.escapeIdentifier(channel)}`).join("; ")),
        catch: (cause) => new SqlError({ cause, message: "LISTEN failed" })
      })
      yield* Effect.promise(() => emit.single({ _tag: "Connected" }))
    })
  )

/** Notifications on `channels`, reconnecting with backoff (up to 5 s apart) for as long as it runs. */
export const listenTo = (config: PgClientConfig, channels: ReadonlyArray<string>): Stream.Stream<ListenEvent, SqlError> =>
  listenOnce(config, channels).pipe(
    Stream.tapError((error) => Effect.logWarning("lost the PostgreSQL listening connection; reconnecting", error)),
    Stream.retry(
      Schedule.exponential("100 millis").pipe(Schedule.modifyDelay((delay) => Duration.min(delay, Duration.seconds(5))))
    )
  )
