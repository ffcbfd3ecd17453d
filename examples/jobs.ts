/**
 * The app's jobs: definitions (what is stored, shared by the API and the worker) and handlers
 * (what the worker runs).
 */
import { Config, DateTime, Effect, Option, Schema } from "effect"
import { cancel, CronSchedule, Job, JobClient, JobContext, snooze } from "conveyor"
import { DeliveryFailed, FeatureFlags, WorkspaceClient } from "./infrastructure.js"
import { Workspaces } from "./workspaces.js"

/** One event to one endpoint. Enqueued by `POST /workspaces/:id/events`, one per endpoint. */
export const DeliverWebhook = Job.make({
  name: "deliver_webhook",
  queue: "webhooks",
  payload: Schema.Struct({ eventId: Schema.String, endpointId: Schema.String }),
  error: DeliveryFailed,
  maxAttempts: 8,
  timeout: "30 seconds"
})

const Day = Schema.String.pipe(Schema.pattern(/^\d{4}-\d{2}-\d{2}$/))

/** A workspace's summary of one day, sent to each of its endpoints; at most one per day. */
export const SendDigest = Job.make({
  name: "send_digest",
  queue: "digests",
  payload: Schema.Struct({ workspaceId: Schema.String, day: Day }),
  error: DeliveryFailed,
  maxAttempts: 5,
  uniqueKey: ({ day, workspaceId }) => `${workspaceId}:${day}`
})

/** Fans out one `send_digest` per workspace; run by the nightly cron schedule. */
export const PlanDigests = Job.make({
  name: "plan_digests",
  queue: "digests",
  payload: Schema.Struct({ day: Day }),
  maxAttempts: 3,
  uniqueKey: ({ day }) => day
})

export const DeliverWebhookHandler = DeliverWebhook.handler(({ endpointId, eventId }) =>
  Effect.gen(function*() {
    const client = yield* WorkspaceClient // job-scoped: this job's workspace only
    const workspaces = yield* Workspaces // process-scoped
    const workspaceId = client.workspace.id
    const event = yield* Effect.orDie(workspaces.event(workspaceId, eventId))
    const endpoint = Option.fromNullable((yield* Effect.orDie(workspaces.endpoints(workspaceId))).find((e) => e.id === endpointId))
    if (Option.isNone(event)) return yield* cancel(`event ${eventId} no longer exists`)
    if (Option.isNone(endpoint) || !endpoint.value.enabled) return yield* cancel(`endpoint ${endpointId} is gone or disabled`)

    const { attempt } = yield* JobContext
    const response = yield* client.post(endpoint.value.url, { ...event.value, attempt })
    if (response.status >= 200 && response.status < 300) {
      return yield* Effect.logInfo(`delivered ${event.value.type} to ${endpoint.value.url}`)
    }
    if (response.status === 410) {
      // The receiver says it will never want these again: stop for good, and send it no more.
      yield* Effect.orDie(workspaces.disableEndpoint(endpointId))
      return yield* cancel(`endpoint ${endpointId} answered 410 Gone`)
    }
    if (response.status === 429) {
      // Asked to slow down: try later without spending an attempt.
      return yield* snooze(Option.getOrElse(response.retryAfter, () => "30 seconds"))
    }
    return yield* new DeliveryFailed({ url: endpoint.value.url, status: response.status, reason: "not a 2xx answer" })
  })
)

export const SendDigestHandler = SendDigest.handler(({ day }) =>
  Effect.gen(function*() {
    const client = yield* WorkspaceClient
    const flags = yield* FeatureFlags
    const workspaces = yield* Workspaces
    const from = DateTime.unsafeMake(`${day}T00:00:00Z`)
    const to = DateTime.add(from, { days: 1 })
    const events = yield* Effect.orDie(
      workspaces.countEvents(client.workspace.id, { from: DateTime.formatIso(from), to: DateTime.formatIso(to) })
    )
    if (events === 0 && flags.skipEmptyDigests) return yield* Effect.logInfo(`no events on ${day}: no digest`)
    const endpoints = (yield* Effect.orDie(workspaces.endpoints(client.workspace.id))).filter((e) => e.enabled)
    yield* Effect.forEach(endpoints, (endpoint) =>
      client.post(endpoint.url, { type: "digest", day, events }).pipe(
        Effect.filterOrFail(
          (response) => response.status >= 200 && response.status < 300,
          (response) => new DeliveryFailed({ url: endpoint.url, status: response.status, reason: "digest refused" })
        )
      ), { discard: true })
    yield* Effect.logInfo(`digest for ${day} sent to ${endpoints.length} endpoint(s): ${events} event(s)`)
  })
)

export const PlanDigestsHandler = PlanDigests.handler(({ day }) =>
  Effect.gen(function*() {
    const workspaces = yield* Workspaces
    const jobs = yield* JobClient
    const ids = yield* Effect.orDie(workspaces.ids)
    // A retried plan does not double the digests still waiting: their unique keys are live.
    yield* Effect.orDie(jobs.enqueueMany(
      SendDigest,
      ids.map((workspaceId) => ({ payload: { workspaceId, day }, options: { tenantId: workspaceId } }))
    ))
    yield* Effect.logInfo(`planned digests for ${day}: ${ids.length} workspace(s)`)
  })
)

/**
 * Every night, the digests of the day that ended: one `plan_digests` job per tick (whichever
 * worker gets the tick), which fans out one `send_digest` per workspace.
 */
export const nightlyDigestsAt = (cron: string) =>
  CronSchedule.make({
    name: "nightly-digests",
    cron,
    timeZone: "UTC",
    job: PlanDigests,
    payload: (tick) => ({ day: DateTime.formatIsoDate(DateTime.subtract(tick, { days: 1 })) }),
    catchUp: CronSchedule.backfill("6 hours"), // a deploy at 06:00 does not lose the night's digests
    overlap: "skip"
  })

/** At 06:00 UTC, or `DIGEST_CRON` (e.g. `"* * * * *"` to watch it every minute). */
export const nightlyDigests = Effect.map(
  Config.string("DIGEST_CRON").pipe(Config.withDefault("0 6 * * *")),
  nightlyDigestsAt
)

export const handlers = [DeliverWebhookHandler, SendDigestHandler, PlanDigestsHandler] as const
