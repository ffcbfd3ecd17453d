/**
 * The product's HTTP API: workspaces register webhook endpoints and publish events; every event
 * is delivered to every endpoint by a job. A request writes its rows and enqueues its jobs in one
 * database transaction: a request that fails after enqueueing leaves neither rows nor jobs.
 */
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, HttpMiddleware } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { DateTime, Effect, Layer, Option, Schema } from "effect"
import { type EnqueueError, JobClient, type JobNotFound } from "conveyor"
import { DeliverWebhook, SendDigest } from "./jobs.js"
import { Flags, Workspaces } from "./workspaces.js"

// --- the contract ----------------------------------------------------------------------------

export class WorkspaceNotFound extends Schema.TaggedError<WorkspaceNotFound>()(
  "WorkspaceNotFound",
  { workspaceId: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

export class EventNotFound extends Schema.TaggedError<EventNotFound>()(
  "EventNotFound",
  { eventId: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

export class EventLimitReached extends Schema.TaggedError<EventLimitReached>()(
  "EventLimitReached",
  { workspaceId: Schema.String, limit: Schema.Number },
  HttpApiSchema.annotations({ status: 429 })
) {}

export const WorkspaceView = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  eventLimit: Schema.Number,
  flags: Flags,
  deliveriesSent: Schema.Number
})

export const EndpointView = Schema.Struct({ id: Schema.String, url: Schema.String, enabled: Schema.Boolean })

export const EventView = Schema.Struct({
  id: Schema.String,
  workspaceId: Schema.String,
  type: Schema.String,
  createdAt: Schema.String,
  deliveries: Schema.Array(Schema.Struct({ endpointId: Schema.String, jobId: Schema.String, state: Schema.String }))
})

const WorkspacePath = Schema.Struct({ workspaceId: Schema.String })

export class WorkspacesGroup extends HttpApiGroup.make("workspaces")
  .add(
    HttpApiEndpoint.post("create", "/workspaces")
      .setPayload(Schema.Struct({
        name: Schema.NonEmptyTrimmedString,
        /** Events the workspace may publish; default 1000. */
        eventLimit: Schema.optional(Schema.Int.pipe(Schema.positive()))
      }))
      .addSuccess(WorkspaceView, { status: 201 })
  )
  .add(
    HttpApiEndpoint.get("get", "/workspaces/:workspaceId")
      .setPath(WorkspacePath)
      .addSuccess(WorkspaceView)
      .addError(WorkspaceNotFound)
  )
  .add(
    HttpApiEndpoint.put("setFlags", "/workspaces/:workspaceId/flags")
      .setPath(WorkspacePath)
      .setPayload(Flags)
      .addSuccess(Flags)
      .addError(WorkspaceNotFound)
  )
  .add(
    HttpApiEndpoint.post("addEndpoint", "/workspaces/:workspaceId/endpoints")
      .setPath(WorkspacePath)
      .setPayload(Schema.Struct({ url: Schema.String.pipe(Schema.pattern(/^https?:\/\//)) }))
      .addSuccess(EndpointView, { status: 201 })
      .addError(WorkspaceNotFound)
  )
  .add(
    HttpApiEndpoint.post("publishEvent", "/workspaces/:workspaceId/events")
      .setPath(WorkspacePath)
      .setPayload(Schema.Struct({ type: Schema.NonEmptyTrimmedString, data: Schema.optional(Schema.Unknown) }))
      .addSuccess(EventView, { status: 202 })
      .addError(WorkspaceNotFound)
      .addError(EventLimitReached)
  )
  .add(
    HttpApiEndpoint.get("getEvent", "/workspaces/:workspaceId/events/:eventId")
      .setPath(Schema.Struct({ workspaceId: Schema.String, eventId: Schema.String }))
      .addSuccess(EventView)
      .addError(EventNotFound)
  )
  .add(
    HttpApiEndpoint.post("sendDigest", "/workspaces/:workspaceId/digests")
      .setPath(WorkspacePath)
      .setPayload(Schema.Struct({ day: Schema.optional(SendDigest.payload.fields.day) }))
      .addSuccess(Schema.Struct({ jobId: Schema.String }), { status: 202 })
      .addError(WorkspaceNotFound)
  )
{}

export class AppApi extends HttpApi.make("app").add(WorkspacesGroup) {}

// --- the handlers ----------------------------------------------------------------------------

type InfrastructureError = SqlError | EnqueueError | JobNotFound
const infrastructureTags: ReadonlySet<string> = new Set(["SqlError", "StoreError", "InvalidPayload", "PayloadTooLarge", "InvalidName", "JobNotFound"])

/** Database and store failures become defects: the client gets a 500, the log gets the cause. */
const dieOnInfrastructure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, InfrastructureError>, R> =>
  Effect.catchIf(
    effect,
    (error): error is Extract<E, InfrastructureError> =>
      typeof error === "object" && error !== null && "_tag" in error && infrastructureTags.has(String(error._tag)),
    Effect.die
  ) as Effect.Effect<A, Exclude<E, InfrastructureError>, R>

const WorkspacesLive = HttpApiBuilder.group(AppApi, "workspaces", (handlers) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const workspaces = yield* Workspaces
    const jobs = yield* JobClient

    const find = (workspaceId: string) =>
      Effect.flatMap(
        workspaces.get(workspaceId),
        Option.match({ onNone: () => Effect.fail(new WorkspaceNotFound({ workspaceId })), onSome: Effect.succeed })
      )

    const eventView = (workspaceId: string, eventId: string) =>
      Effect.gen(function*() {
        const event = yield* workspaces.event(workspaceId, eventId)
        if (Option.isNone(event)) return yield* new EventNotFound({ eventId })
        const deliveries = yield* Effect.forEach(yield* workspaces.deliveries(eventId), (delivery) =>
          Effect.map(jobs.get(delivery.jobId), (job) => ({ ...delivery, state: job.state })))
        const { createdAt, id, type } = event.value
        return { id, workspaceId, type, createdAt, deliveries }
      })

    return handlers
      .handle("create", ({ payload }) =>
        dieOnInfrastructure(workspaces.create({ name: payload.name, eventLimit: payload.eventLimit ?? 1000 })))
      .handle("get", ({ path }) => dieOnInfrastructure(find(path.workspaceId)))
      .handle("setFlags", ({ path, payload }) =>
        Effect.gen(function*() {
          yield* find(path.workspaceId)
          yield* workspaces.setFlags(path.workspaceId, payload)
          return payload
        }).pipe(dieOnInfrastructure))
      .handle("addEndpoint", ({ path, payload }) =>
        Effect.gen(function*() {
          yield* find(path.workspaceId)
          return yield* workspaces.addEndpoint(path.workspaceId, payload.url)
        }).pipe(dieOnInfrastructure))
      // #region publish
      .handle("publishEvent", ({ path, payload }) =>
        sql.withTransaction(Effect.gen(function*() {
          const workspace = yield* find(path.workspaceId)
          const event = yield* workspaces.addEvent(workspace.id, { type: payload.type, data: payload.data ?? null })
          const endpoints = (yield* workspaces.endpoints(workspace.id)).filter((endpoint) => endpoint.enabled)
          // The jobs are rows in the same transaction as the event.
          const enqueued = yield* jobs.enqueueMany(
            DeliverWebhook,
            endpoints.map((endpoint) => ({
              payload: { eventId: event.id, endpointId: endpoint.id },
              options: { tenantId: workspace.id }
            }))
          )
          const deliveries = endpoints.map((endpoint, i) => ({ endpointId: endpoint.id, jobId: enqueued[i]!.id }))
          yield* workspaces.recordDeliveries(event.id, deliveries)
          // Checked last, counting this event: over the limit, everything above rolls back, jobs included.
          if ((yield* workspaces.countEvents(workspace.id)) > workspace.eventLimit) {
            return yield* new EventLimitReached({ workspaceId: workspace.id, limit: workspace.eventLimit })
          }
          return {
            id: event.id,
            workspaceId: workspace.id,
            type: event.type,
            createdAt: event.createdAt,
            deliveries: deliveries.map((delivery) => ({ ...delivery, state: "available" }))
          }
        })).pipe(dieOnInfrastructure))
      // #endregion publish
      .handle("getEvent", ({ path }) => dieOnInfrastructure(eventView(path.workspaceId, path.eventId)))
      .handle("sendDigest", ({ path, payload }) =>
        Effect.gen(function*() {
          const workspace = yield* find(path.workspaceId)
          const day = payload.day ?? DateTime.formatIsoDate(yield* DateTime.now)
          const jobId = yield* jobs.enqueue(SendDigest, { workspaceId: workspace.id, day }, {
            tenantId: workspace.id,
            trigger: "manual"
          })
          return { jobId }
        }).pipe(dieOnInfrastructure))
  }))

/**
 * The API, served by whatever `HttpServer` is provided: `NodeHttpServer.layer` in
 * examples/api.ts, a port of its own in the tests. Needs the process-scoped layers.
 */
export const HttpApiLive = HttpApiBuilder.serve(HttpMiddleware.logger).pipe(
  Layer.provide(HttpApiBuilder.api(AppApi)),
  Layer.provide(WorkspacesLive)
)
