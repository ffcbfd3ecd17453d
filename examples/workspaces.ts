/**
 * The product's own data: workspaces, their webhook endpoints, the events they publish and the
 * deliveries (one job each) those events fan out to. Plain SQL on the same `SqlClient` as the
 * job store, so a request's writes and the jobs it enqueues commit or roll back together.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Config, type ConfigError, Context, DateTime, Effect, Layer, Option, Schema } from "effect"

/** Per-workspace switches, read by every job when it starts (see `FeatureFlags`). */
export const Flags = Schema.Struct({
  /** Sign each delivery with the workspace's secret (`x-signature` header). */
  signDeliveries: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Send no digest on a day without events. */
  skipEmptyDigests: Schema.optionalWith(Schema.Boolean, { default: () => true })
})
export type Flags = typeof Flags.Type

export interface Workspace {
  readonly id: string
  readonly name: string
  readonly signingSecret: string
  readonly eventLimit: number
  readonly flags: Flags
  readonly deliveriesSent: number
}

export interface Endpoint {
  readonly id: string
  readonly workspaceId: string
  readonly url: string
  readonly enabled: boolean
}

export interface StoredEvent {
  readonly id: string
  readonly workspaceId: string
  readonly type: string
  readonly data: unknown
  readonly createdAt: string
}

export interface Delivery {
  readonly endpointId: string
  readonly jobId: string
}

const decodeFlags = Schema.decodeSync(Schema.parseJson(Flags))
const encodeFlags = Schema.encodeSync(Schema.parseJson(Flags))

interface WorkspaceRow {
  readonly id: string
  readonly name: string
  readonly signing_secret: string
  readonly event_limit: number
  readonly flags: string
  readonly deliveries_sent: number
}

const toWorkspace = (row: WorkspaceRow): Workspace => ({
  id: row.id,
  name: row.name,
  signingSecret: row.signing_secret,
  eventLimit: Number(row.event_limit),
  flags: decodeFlags(row.flags),
  deliveriesSent: Number(row.deliveries_sent)
})

/** Table names start with `APP_TABLE_PREFIX` (default `app_`), so tests get tables of their own. */
export const tablePrefix = Config.string("APP_TABLE_PREFIX").pipe(
  Config.validate({ message: "letters, digits and _ only", validation: (prefix) => /^[a-z_][a-z0-9_]*$/.test(prefix) }),
  Config.withDefault("app_")
)

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const prefix = yield* tablePrefix
  const workspaces = sql(`${prefix}workspaces`)
  const endpoints = sql(`${prefix}endpoints`)
  const events = sql(`${prefix}events`)
  const deliveries = sql(`${prefix}deliveries`)

  const createTables = Effect.all([
    sql`CREATE TABLE IF NOT EXISTS ${workspaces} (
      id TEXT PRIMARY KEY, name TEXT NOT NULL, signing_secret TEXT NOT NULL, event_limit INTEGER NOT NULL,
      flags TEXT NOT NULL, deliveries_sent INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL)`,
    sql`CREATE TABLE IF NOT EXISTS ${endpoints} (
      id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, url TEXT NOT NULL, enabled INTEGER NOT NULL,
      created_at TEXT NOT NULL)`,
    sql`CREATE TABLE IF NOT EXISTS ${events} (
      id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,
      created_at TEXT NOT NULL)`,
    sql`CREATE TABLE IF NOT EXISTS ${deliveries} (
      event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, job_id TEXT NOT NULL, PRIMARY KEY (event_id, endpoint_id))`
  ], { discard: true })
  // An API and several workers may start together on PostgreSQL: one creates, the others wait.
  yield* sql.onDialectOrElse({
    pg: () => sql.withTransaction(Effect.zipRight(sql`SELECT pg_advisory_xact_lock(hashtext(${prefix}))`, createTables)),
    orElse: () => createTables
  })

  const now = Effect.map(DateTime.now, DateTime.formatIso)
  const newId = (kind: string) => Effect.sync(() => `${kind}_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`)

  const get = (id: string) =>
    Effect.map(sql<WorkspaceRow>`SELECT * FROM ${workspaces} WHERE id = ${id}`, (rows) =>
      Option.map(Option.fromNullable(rows[0]), toWorkspace))

  return {
    create: (input: { readonly name: string; readonly eventLimit: number }) =>
      Effect.gen(function*() {
        const id = yield* newId("ws")
        const secret = yield* newId("whsec")
        yield* sql`INSERT INTO ${workspaces} ${
          sql.insert({
            id,
            name: input.name,
            signing_secret: secret,
            event_limit: input.eventLimit,
            flags: encodeFlags(Flags.make({})),
            deliveries_sent: 0,
            created_at: yield* now
          })
        }`
        return yield* Effect.map(get(id), Option.getOrThrow)
      }),
    get,
    ids: Effect.map(sql<{ readonly id: string }>`SELECT id FROM ${workspaces} ORDER BY id`, (rows) => rows.map((row) => row.id)),
    setFlags: (id: string, flags: Flags) => sql`UPDATE ${workspaces} SET flags = ${encodeFlags(flags)} WHERE id = ${id}`,
    addDeliveriesSent: (id: string, count: number) =>
      sql`UPDATE ${workspaces} SET deliveries_sent = deliveries_sent + ${count} WHERE id = ${id}`,

    addEndpoint: (workspaceId: string, url: string) =>
      Effect.gen(function*() {
        const endpoint: Endpoint = { id: yield* newId("ep"), workspaceId, url, enabled: true }
        yield* sql`INSERT INTO ${endpoints} ${
          sql.insert({ id: endpoint.id, workspace_id: workspaceId, url, enabled: 1, created_at: yield* now })
        }`
        return endpoint
      }),
    endpoints: (workspaceId: string) =>
      Effect.map(
        sql<{ readonly id: string; readonly url: string; readonly enabled: number }>`
          SELECT id, url, enabled FROM ${endpoints} WHERE workspace_id = ${workspaceId} ORDER BY created_at, id`,
        (rows) => rows.map((row): Endpoint => ({ id: row.id, workspaceId, url: row.url, enabled: Number(row.enabled) === 1 }))
      ),
    disableEndpoint: (id: string) => sql`UPDATE ${endpoints} SET enabled = 0 WHERE id = ${id}`,

    addEvent: (workspaceId: string, input: { readonly type: string; readonly data: unknown }) =>
      Effect.gen(function*() {
        const event: StoredEvent = { id: yield* newId("evt"), workspaceId, type: input.type, data: input.data, createdAt: yield* now }
        yield* sql`INSERT INTO ${events} ${
          sql.insert({ id: event.id, workspace_id: workspaceId, type: event.type, data: JSON.stringify(event.data ?? null), created_at: event.createdAt })
        }`
        return event
      }),
    event: (workspaceId: string, id: string) =>
      Effect.map(
        sql<{ readonly id: string; readonly type: string; readonly data: string; readonly created_at: string }>`
          SELECT id, type, data, created_at FROM ${events} WHERE workspace_id = ${workspaceId} AND id = ${id}`,
        (rows) =>
          Option.map(Option.fromNullable(rows[0]), (row): StoredEvent => ({
            id: row.id,
            workspaceId,
            type: row.type,
            data: JSON.parse(row.data) as unknown,
            createdAt: row.created_at
          }))
      ),
    /** Events of a workspace created in `[from, to)` (ISO times). */
    countEvents: (workspaceId: string, range?: { readonly from: string; readonly to: string }) =>
      Effect.map(
        range === undefined
          ? sql<{ readonly n: number }>`SELECT CAST(COUNT(*) AS INTEGER) AS n FROM ${events} WHERE workspace_id = ${workspaceId}`
          : sql<{ readonly n: number }>`SELECT CAST(COUNT(*) AS INTEGER) AS n FROM ${events}
              WHERE workspace_id = ${workspaceId} AND created_at >= ${range.from} AND created_at < ${range.to}`,
        (rows) => Number(rows[0]?.n ?? 0)
      ),

    recordDeliveries: (eventId: string, list: ReadonlyArray<Delivery>) =>
      list.length === 0
        ? Effect.void
        : sql`INSERT INTO ${deliveries} ${
          sql.insert(list.map((delivery) => ({ event_id: eventId, endpoint_id: delivery.endpointId, job_id: delivery.jobId })))
        }`.pipe(Effect.asVoid),
    deliveries: (eventId: string) =>
      Effect.map(
        sql<{ readonly endpoint_id: string; readonly job_id: string }>`
          SELECT endpoint_id, job_id FROM ${deliveries} WHERE event_id = ${eventId} ORDER BY endpoint_id`,
        (rows) => rows.map((row): Delivery => ({ endpointId: row.endpoint_id, jobId: row.job_id }))
      )
  }
})

type Shape = Effect.Effect.Success<typeof make>

/** The product's tables and queries; creates its tables when the layer is built. */
export class Workspaces extends Context.Tag("example/Workspaces")<Workspaces, Shape>() {
  static readonly layer: Layer.Layer<Workspaces, SqlError | ConfigError.ConfigError, SqlClient.SqlClient> =
    Layer.effect(Workspaces, make)
}
