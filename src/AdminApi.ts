/**
 * The admin HTTP API (`conveyor/admin`): its definition, the shapes it speaks, and a typed client.
 *
 * One definition serves three purposes: the server implements it (`AdminServer`), clients are
 * derived from it (`AdminApi.client`), and the OpenAPI document (`/openapi.json`) is generated
 * from it. The CLI prints the same shapes with `--json`.
 *
 * Every `/api` route needs `Authorization: Bearer <token>` when a token is configured. Actions are
 * POST only and refuse cross-site requests.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as OpenApi from "@effect/platform/OpenApi"
import { type Effect, Option, Redacted, Schema } from "effect"
import { InvalidName, InvalidPayload, JobNotFound, PayloadTooLarge } from "./Errors.js"
import { JobState, Trigger } from "./JobStore.js"
import { namePattern } from "./internal/names.js"
import { contentType as prometheusContentType } from "./internal/prometheus.js"

// --- inputs -----------------------------------------------------------------------------------

/** A queue or job name: the one pattern every name follows. */
export const Name = Schema.String.pipe(
  Schema.pattern(namePattern, {
    message: () => `a name is 1-128 letters, digits, "_", "-", "." or ":", starting with a letter or digit`
  }),
  Schema.annotations({ identifier: "Name" })
)

/** A job id as stores issue them. */
export const JobId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, { message: () => "a job id is 1-64 letters, digits, \"_\" or \"-\"" }),
  Schema.annotations({ identifier: "JobId" })
)

/** Most jobs one list request returns. */
export const maxPageSize = 500

export const JobListParams = Schema.Struct({
  queue: Schema.optional(Name),
  state: Schema.optional(JobState),
  name: Schema.optional(Name),
  limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, maxPageSize))),
  offset: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative()))
})
export type JobListParams = typeof JobListParams.Type

export const EnqueueRequest = Schema.Struct({
  name: Name,
  /** The payload in its encoded (JSON) form; validated with the job's Schema. */
  payload: Schema.Unknown,
  queue: Schema.optional(Name),
  delaySeconds: Schema.optional(Schema.Number.pipe(Schema.nonNegative())),
  priority: Schema.optional(Schema.Number.pipe(Schema.int())),
  uniqueKey: Schema.optional(Schema.String.pipe(Schema.maxLength(256)))
}).annotations({ identifier: "EnqueueRequest" })
export type EnqueueRequest = typeof EnqueueRequest.Type

// --- outputs ----------------------------------------------------------------------------------

const Time = Schema.DateTimeUtc

export class AttemptErrorView extends Schema.Class<AttemptErrorView>("AttemptError")({
  attempt: Schema.Number,
  at: Time,
  kind: Schema.String,
  message: Schema.String
}) {}

export class JobView extends Schema.Class<JobView>("Job")({
  id: Schema.String,
  name: Schema.String,
  queue: Schema.String,
  state: JobState,
  priority: Schema.Number,
  attempt: Schema.Number,
  maxAttempts: Schema.Number,
  trigger: Trigger,
  tenantId: Schema.NullOr(Schema.String),
  /** The encoded payload; null when payloads are hidden by configuration. */
  payload: Schema.NullOr(Schema.Unknown),
  payloadHidden: Schema.Boolean,
  /** The encoded result of a completed job, if its definition has a success Schema (hidden like payloads). */
  result: Schema.NullOr(Schema.Unknown),
  metadata: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  enqueuedAt: Time,
  runAt: Time,
  attemptedAt: Schema.NullOr(Time),
  finishedAt: Schema.NullOr(Time),
  workerId: Schema.NullOr(Schema.String),
  cancelRequested: Schema.Boolean,
  errors: Schema.Array(AttemptErrorView)
}) {}

export class JobPage extends Schema.Class<JobPage>("JobPage")({
  jobs: Schema.Array(JobView),
  offset: Schema.Number,
  limit: Schema.Number,
  /** Whether more jobs match beyond this page. */
  hasMore: Schema.Boolean
}) {}

/** Jobs per state. */
export const StateCounts = Schema.Struct({
  scheduled: Schema.Number,
  available: Schema.Number,
  running: Schema.Number,
  retryable: Schema.Number,
  completed: Schema.Number,
  cancelled: Schema.Number,
  discarded: Schema.Number
}).annotations({ identifier: "StateCounts" })
export type StateCounts = typeof StateCounts.Type

export class QueueView extends Schema.Class<QueueView>("Queue")({
  queue: Schema.String,
  paused: Schema.Boolean,
  counts: StateCounts
}) {}

export class CronView extends Schema.Class<CronView>("CronSchedule")({
  schedule: Schema.String,
  /** The cron expression and its time zone, when the schedule's definition is known here. */
  cron: Schema.NullOr(Schema.String),
  timeZone: Schema.NullOr(Schema.String),
  job: Schema.NullOr(Schema.String),
  lastTick: Schema.NullOr(Time),
  nextRun: Schema.NullOr(Time)
}) {}

export class ThroughputBucket extends Schema.Class<ThroughputBucket>("ThroughputBucket")({
  at: Time,
  completed: Schema.Number,
  discarded: Schema.Number,
  cancelled: Schema.Number
}) {}

export class StatsView extends Schema.Class<StatsView>("Stats")({
  totals: StateCounts,
  queues: Schema.Number,
  pausedQueues: Schema.Number,
  since: Time,
  bucketSeconds: Schema.Number,
  /** Jobs finished per bucket over the window, oldest first, every bucket present. */
  throughput: Schema.Array(ThroughputBucket),
  completed: Schema.Number,
  discarded: Schema.Number,
  /** Discarded among completed and discarded jobs in the window; null when none finished. */
  failureRate: Schema.NullOr(Schema.Number)
}) {}

export class Enqueued extends Schema.Class<Enqueued>("Enqueued")({
  id: Schema.String,
  /** False when a live job with the same unique key existed: `id` is that job. */
  inserted: Schema.Boolean
}) {}

export class Readiness extends Schema.Class<Readiness>("Readiness")({
  store: Schema.Literal("ok", "unreachable"),
  /** The id of the worker this server runs in, if any. */
  worker: Schema.NullOr(Schema.String)
}) {}

// --- errors -----------------------------------------------------------------------------------

/** Enqueue asked for a job name this server has no definition for. */
export class UnknownJob extends Schema.TaggedError<UnknownJob>()("UnknownJob", {
  name: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {
  override get message() {
    return `no job definition named ${JSON.stringify(this.name)}`
  }
}

/** The store did not answer; details are in the server's log. */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>()("StoreUnavailable", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 503 })) {}

/** Returned by `/readyz` with status 503 when the server is not ready. */
export class NotReady extends Schema.TaggedError<NotReady>()("NotReady", {
  store: Schema.Literal("ok", "unreachable"),
  worker: Schema.NullOr(Schema.String)
}, HttpApiSchema.annotations({ status: 503 })) {}

// --- middleware -------------------------------------------------------------------------------

/** Bearer-token authentication for every `/api` route. */
export class AdminAuth extends HttpApiMiddleware.Tag<AdminAuth>()("conveyor/AdminAuth", {
  failure: HttpApiError.Unauthorized,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/** Refuses cross-site requests (by `Sec-Fetch-Site`, else `Origin`): on every action. */
export class SameOriginOnly extends HttpApiMiddleware.Tag<SameOriginOnly>()("conveyor/SameOriginOnly", {
  failure: HttpApiError.Forbidden
}) {}

// --- the API ----------------------------------------------------------------------------------

const idParam = HttpApiSchema.param("id", JobId)
const queueParam = HttpApiSchema.param("queue", Name)

export class HealthGroup extends HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("healthz", "/healthz").addSuccess(Schema.Struct({ status: Schema.Literal("ok") })))
  .add(HttpApiEndpoint.get("readyz", "/readyz").addSuccess(Readiness).addError(NotReady))
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(HttpApiSchema.Text({ contentType: prometheusContentType }))
  )
  .annotate(OpenApi.Description, "Liveness, readiness and Prometheus metrics; no authentication.")
{}

export class JobsGroup extends HttpApiGroup.make("jobs")
  .add(HttpApiEndpoint.get("list", "/jobs").setUrlParams(JobListParams).addSuccess(JobPage))
  .add(HttpApiEndpoint.get("get")`/jobs/${idParam}`.addSuccess(JobView).addError(JobNotFound, { status: 404 }))
  .add(
    HttpApiEndpoint.post("enqueue", "/jobs")
      .setPayload(EnqueueRequest)
      .addSuccess(Enqueued, { status: 201 })
      .addError(UnknownJob)
      .addError(InvalidPayload, { status: 422 })
      .addError(PayloadTooLarge, { status: 413 })
      .addError(InvalidName, { status: 400 })
      .middleware(SameOriginOnly)
  )
  .add(
    HttpApiEndpoint.post("retry")`/jobs/${idParam}/retry`
      .addSuccess(JobView)
      .addError(JobNotFound, { status: 404 })
      .middleware(SameOriginOnly)
  )
  .add(
    HttpApiEndpoint.post("cancel")`/jobs/${idParam}/cancel`
      .addSuccess(JobView)
      .addError(JobNotFound, { status: 404 })
      .middleware(SameOriginOnly)
  )
  .addError(StoreUnavailable)
  .middleware(AdminAuth)
  .prefix("/api")
{}

export class QueuesGroup extends HttpApiGroup.make("queues")
  .add(HttpApiEndpoint.get("list", "/queues").addSuccess(Schema.Array(QueueView)))
  .add(HttpApiEndpoint.post("pause")`/queues/${queueParam}/pause`.addSuccess(QueueView).middleware(SameOriginOnly))
  .add(HttpApiEndpoint.post("resume")`/queues/${queueParam}/resume`.addSuccess(QueueView).middleware(SameOriginOnly))
  .addError(InvalidName, { status: 400 })
  .addError(StoreUnavailable)
  .middleware(AdminAuth)
  .prefix("/api")
{}

export class CronGroup extends HttpApiGroup.make("cron")
  .add(HttpApiEndpoint.get("list", "/cron").addSuccess(Schema.Array(CronView)))
  .addError(StoreUnavailable)
  .middleware(AdminAuth)
  .prefix("/api")
{}

export class StatsGroup extends HttpApiGroup.make("stats")
  .add(HttpApiEndpoint.get("get", "/stats").addSuccess(StatsView))
  .addError(StoreUnavailable)
  .middleware(AdminAuth)
  .prefix("/api")
{}

export class AdminApi extends HttpApi.make("conveyor-admin")
  .add(HealthGroup)
  .add(JobsGroup)
  .add(QueuesGroup)
  .add(CronGroup)
  .add(StatsGroup)
  .annotate(OpenApi.Title, "Conveyor admin API")
  .annotate(OpenApi.Version, "1")
{}

// --- client -----------------------------------------------------------------------------------

export interface ClientOptions {
  /** The admin server's address, e.g. `http://127.0.0.1:9400`. */
  readonly baseUrl?: string | URL
  /** The bearer token, when the server has one. */
  readonly token?: Redacted.Redacted | string
}

/** A typed client for the admin API, over the `HttpClient` in context. */
export const client = (options: ClientOptions = {}) => {
  const token = Option.map(
    Option.fromNullable(options.token),
    (token) => (Redacted.isRedacted(token) ? token : Redacted.make(token))
  )
  return HttpApiClient.make(AdminApi, {
    ...(options.baseUrl === undefined ? {} : { baseUrl: options.baseUrl }),
    transformClient: (httpClient) =>
      Option.match(token, {
        onNone: () => httpClient,
        onSome: (secret) => HttpClient.mapRequest(httpClient, HttpClientRequest.bearerToken(Redacted.value(secret)))
      })
  })
}

export type Client = Effect.Effect.Success<ReturnType<typeof client>>
