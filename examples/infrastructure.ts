/**
 * The application's infrastructure, shared by its two entry points: the HTTP API
 * (examples/api.ts) and the worker (examples/worker.ts). "The worker reuses the same
 * infrastructure wiring as your HTTP service but has a different event loop."
 *
 * - Process scope, built once: configuration, the database (job store and the product's own
 *   tables on one `SqlClient`), telemetry and logs, the outbound webhook client.
 * - Job scope, built fresh for every job and released with it: the job's workspace client and
 *   its feature flags. Handlers ask for them by tag and cannot tell how long they live.
 */
import { createHmac } from "node:crypto"
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { Config, Context, Duration, Effect, Layer, Option, Ref, Schema } from "effect"
import { cancel, JobContext, Telemetry } from "conveyor"
import * as Database from "conveyor/database"
import { type Flags, type Workspace, Workspaces } from "./workspaces.js"

// --- process scope ---------------------------------------------------------------------------

/**
 * The database: the job store, its client and the `SqlClient` (the SQLite file `conveyor.db` by
 * default, PostgreSQL when `DATABASE_URL` is set), with the product's tables on that client.
 */
export const DatabaseLive = Workspaces.layer.pipe(Layer.provideMerge(Database.layer))

/** Logs, traces and metrics from the environment (docs/telemetry.md), under this process's name. */
export const TelemetryLive = (serviceName: string) => Telemetry.layerFromEnv({ serviceName })

/** A webhook call that did not get a 2xx answer, or no answer at all (`status` 0). */
export class DeliveryFailed extends Schema.TaggedError<DeliveryFailed>()("DeliveryFailed", {
  url: Schema.String,
  status: Schema.Number,
  reason: Schema.String
}) {}

export interface WebhookResponse {
  readonly status: number
  /** The receiver's `Retry-After`, when it asked to be called later. */
  readonly retryAfter: Option.Option<Duration.Duration>
}

/**
 * The outbound HTTP client for webhooks: one connection pool for the whole process, a
 * timeout per call, and our user agent. It knows nothing of workspaces.
 */
export class WebhookClient extends Context.Tag("example/WebhookClient")<WebhookClient, {
  readonly post: (
    url: string,
    body: string,
    headers: Readonly<Record<string, string>>
  ) => Effect.Effect<WebhookResponse, DeliveryFailed>
}>() {
  static readonly config = Config.all({
    timeout: Config.duration("WEBHOOK_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
    userAgent: Config.string("WEBHOOK_USER_AGENT").pipe(Config.withDefault("conveyor-example/1.0"))
  })

  static readonly layer = Layer.effect(
    WebhookClient,
    Effect.gen(function*() {
      const { timeout, userAgent } = yield* WebhookClient.config
      const http = yield* HttpClient.HttpClient
      return {
        post: (url, body, headers) =>
          http.execute(
            HttpClientRequest.post(url).pipe(
              HttpClientRequest.setHeaders({ ...headers, "user-agent": userAgent }),
              HttpClientRequest.bodyText(body, "application/json")
            )
          ).pipe(
            Effect.scoped,
            Effect.timeoutFail({
              duration: timeout,
              onTimeout: () => new DeliveryFailed({ url, status: 0, reason: `no answer within ${Duration.format(timeout)}` })
            }),
            Effect.catchTag("RequestError", "ResponseError", (error) =>
              Effect.fail(new DeliveryFailed({ url, status: 0, reason: error.message }))),
            Effect.map((response): WebhookResponse => ({
              status: response.status,
              retryAfter: Option.flatMap(
                Option.fromNullable(response.headers["retry-after"]),
                (seconds) => Number.isFinite(Number(seconds)) ? Option.some(Duration.seconds(Number(seconds))) : Option.none()
              )
            }))
          )
      }
    })
  ).pipe(
    // Its own client: a test server's client (which prefixes its URL) must not leak in here.
    Layer.provide(NodeHttpClient.layerUndici)
  )
}

/**
 * The app's own process-scoped services over a `SqlClient` someone else provides: the
 * `conveyor worker` command does (examples/worker-module.ts).
 */
export const AppServicesLive = Layer.mergeAll(Workspaces.layer, WebhookClient.layer)

/** Everything a process of the app holds for its whole life, whichever entry point it runs. */
export const ProcessLive = AppServicesLive.pipe(Layer.provideMerge(Database.layer))

// --- job scope -------------------------------------------------------------------------------

/** The workspace of the running job, from its `JobContext.tenantId` (see `JobScopedLive`). */
const currentWorkspace = Effect.gen(function*() {
  const job = yield* JobContext
  const workspaceId = yield* Option.match(job.tenantId, {
    onNone: () => Effect.dieMessage(`job ${job.name} has no workspace`),
    onSome: Effect.succeed
  })
  const workspaces = yield* Workspaces
  const workspace = yield* Effect.orDie(workspaces.get(workspaceId))
  // Deleted since the job was enqueued: nothing left to do, ever.
  return yield* Option.match(workspace, { onNone: () => cancel(`workspace ${workspaceId} no longer exists`), onSome: Effect.succeed })
})

/**
 * A client that speaks for one workspace: every call carries its id (and its signature when the
 * workspace asked for signed deliveries), is traced with it, and is counted. It is built for
 * one job and released with it, when the count is written to the workspace's usage: state that
 * must never be shared between jobs, let alone workspaces.
 */
export class WorkspaceClient extends Context.Tag("example/WorkspaceClient")<WorkspaceClient, {
  readonly workspace: Workspace
  readonly post: (url: string, body: unknown) => Effect.Effect<WebhookResponse, DeliveryFailed>
}>() {
  static readonly layer = Layer.scoped(
    WorkspaceClient,
    Effect.gen(function*() {
      const workspace = yield* currentWorkspace
      const webhooks = yield* WebhookClient
      const workspaces = yield* Workspaces
      const sent = yield* Ref.make(0)
      yield* Effect.logInfo("workspace client opened")
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          const count = yield* Ref.get(sent)
          if (count > 0) yield* workspaces.addDeliveriesSent(workspace.id, count)
          yield* Effect.logInfo(`workspace client closed after ${count} call(s)`)
        }).pipe(Effect.catchAllCause(Effect.logWarning))
      )
      const sign = (body: string) => createHmac("sha256", workspace.signingSecret).update(body).digest("hex")
      return {
        workspace,
        post: (url, payload) => {
          const body = JSON.stringify(payload)
          const headers: Record<string, string> = { "x-workspace-id": workspace.id }
          if (workspace.flags.signDeliveries) headers["x-signature"] = `sha256=${sign(body)}`
          return webhooks.post(url, body, headers).pipe(
            Effect.tap(() => Ref.update(sent, (n) => n + 1)),
            Effect.withSpan("webhook.post", {
              kind: "client",
              attributes: { "workspace.id": workspace.id, "url.full": url, "http.request.method": "POST" }
            })
          )
        }
      }
    })
  )
}

/**
 * The job's workspace flags, as read when the job started: a flag switched through the API is
 * seen by the next job, never halfway through one, and never by another workspace's job.
 */
export class FeatureFlags extends Context.Tag("example/FeatureFlags")<FeatureFlags, Flags>() {
  static readonly layer = Layer.effect(FeatureFlags, Effect.map(WorkspaceClient, (client) => client.workspace.flags))
}

const WorkspaceScopedLive = FeatureFlags.layer.pipe(Layer.provideMerge(WorkspaceClient.layer))

/**
 * The job-scoped layers, handed to the worker as its `jobLayer`: built at the start of every
 * job, released at its end. A job of a workspace gets that workspace's client and flags. The
 * one job that belongs to no workspace (the nightly digest plan) gets neither: asking for them
 * there is a defect ("Service not found"), which its handler never does.
 */
export const JobScopedLive: Layer.Layer<
  WorkspaceClient | FeatureFlags,
  Layer.Layer.Error<typeof WorkspaceScopedLive>,
  Layer.Layer.Context<typeof WorkspaceScopedLive>
> = Layer.unwrapEffect(
  Effect.map(JobContext, (job) =>
    Option.isSome(job.tenantId)
      ? WorkspaceScopedLive
      : Layer.empty as Layer.Layer<WorkspaceClient | FeatureFlags>)
)
