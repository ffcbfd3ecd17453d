/**
 * The admin server (`conveyor/admin`): health and readiness probes, Prometheus metrics, the JSON
 * API of `AdminApi` with its OpenAPI document, and the web dashboard, served by a worker process.
 *
 * ```ts
 * const MainLive = Layer.mergeAll(WorkerLive, AdminServer.layerConfig()).pipe(Layer.provide(StoreLive))
 * ```
 *
 * Secure by default: every `/api` route needs the bearer token when one is configured; without a
 * token the server binds to loopback only (and says so at start); actions are POST only and
 * refuse cross-site requests; request bodies are size-limited.
 */
import { createServer } from "node:http"
import type { Etag, FileSystem, HttpPlatform, Path } from "@effect/platform"
import * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Config, type ConfigError, Context, Effect, Layer, Option, Redacted } from "effect"
import type { AnyJob } from "./Job.js"
import type { JobStore } from "./JobStore.js"
import { isLoopbackHost, serverLayer } from "./http/server.js"
import { prometheusText } from "./internal/prometheus.js"
import type { ScheduleDescription } from "./internal/operations.js"

export type { ScheduleDescription }

/** `GET /metrics` (Prometheus text of every Effect metric), for mounting in your own `HttpRouter`. */
export { metricsRouter } from "./internal/metricsServer.js"

export interface AdminServerOptions {
  /** Default 9400. */
  readonly port?: number
  /** Interface to listen on. Default `127.0.0.1`; anything else needs a token. */
  readonly host?: string
  /** Bearer token for every `/api` route. Without one the server binds to loopback only. */
  readonly token?: Redacted.Redacted | undefined
  /** Hide job payloads and results in the API and the dashboard. Default false. */
  readonly hidePayloads?: boolean
  /** Largest accepted request body in bytes. Default 64 KiB. */
  readonly maxBodyBytes?: number
  /** Cron schedules this process runs, shown with their next run. */
  readonly schedules?: ReadonlyArray<ScheduleDescription>
  /** Job definitions the API may enqueue (payloads validated with their Schemas). */
  readonly jobs?: ReadonlyArray<AnyJob>
  /** Prometheus text for `/metrics`; defaults to the `MetricsText` service. */
  readonly metrics?: Effect.Effect<string>
}

export const defaultPort = 9400

/**
 * Where `/metrics` gets its text: by default every Effect metric in the process (the job and
 * messaging metrics of `Telemetry`) as Prometheus text; provide another source to replace it.
 */
export class MetricsText extends Context.Reference<MetricsText>()("conveyor/AdminServer/MetricsText", {
  defaultValue: (): Effect.Effect<string> => prometheusText
}) {}

/** What the admin app needs from the HTTP server it runs on. */
export type HttpServices =
  | HttpServer.HttpServer
  | HttpPlatform.HttpPlatform
  | Etag.Generator
  | FileSystem.FileSystem
  | Path.Path

/** The admin app on an `HttpServer` you provide (for tests: `NodeHttpServer.layerTest`). */
export const layerHttp = (options: Omit<AdminServerOptions, "port" | "host"> = {}): Layer.Layer<never, never, JobStore | HttpServices> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const metrics = options.metrics ?? (yield* MetricsText)
    return serverLayer({
      token: Option.fromNullable(options.token),
      maxBodyBytes: options.maxBodyBytes ?? 64 * 1024,
      metrics,
      ...(options.hidePayloads === undefined ? {} : { hidePayloads: options.hidePayloads }),
      ...(options.schedules === undefined ? {} : { schedules: options.schedules }),
      jobs: options.jobs ?? []
    })
  }))

/** The admin server on its own port. */
export const layer = (options: AdminServerOptions = {}): Layer.Layer<never, ServeError, JobStore> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const port = options.port ?? defaultPort
    const asked = options.host ?? "127.0.0.1"
    const tokenless = options.token === undefined
    const host = tokenless && !isLoopbackHost(asked) ? "127.0.0.1" : asked
    const logs = { module: "AdminServer" }
    if (tokenless) {
      yield* Effect.logWarning(
        asked === host
          ? "no admin token configured: the admin server binds to loopback only"
          : `no admin token configured: binding to 127.0.0.1 instead of ${asked}; set CONVEYOR_ADMIN_TOKEN to listen there`
      ).pipe(Effect.annotateLogs(logs))
    }
    const started = Layer.effectDiscard(
      Effect.flatMap(HttpServer.HttpServer, (server) =>
        Effect.logInfo(`admin server listening on ${HttpServer.formatAddress(server.address)}`)).pipe(
          Effect.annotateLogs(logs)
        )
    )
    return Layer.mergeAll(layerHttp(options), started).pipe(
      Layer.provide(NodeHttpServer.layer(createServer, { port, host }))
    )
  }))

/** Settings from the environment (`CONVEYOR_ADMIN_*`). */
export const config: Config.Config<Pick<AdminServerOptions, "port" | "host" | "token" | "hidePayloads">> = Config.all({
  port: Config.port("CONVEYOR_ADMIN_PORT").pipe(Config.withDefault(defaultPort)),
  host: Config.string("CONVEYOR_ADMIN_HOST").pipe(Config.withDefault("127.0.0.1")),
  token: Config.redacted("CONVEYOR_ADMIN_TOKEN").pipe(
    Config.validate({ message: "must be at least 16 characters", validation: (token) => Redacted.value(token).length >= 16 }),
    Config.option
  ),
  hidePayloads: Config.boolean("CONVEYOR_ADMIN_HIDE_PAYLOADS").pipe(Config.withDefault(false))
}).pipe(Config.map(({ token, ...rest }) => ({ ...rest, token: Option.getOrUndefined(token) })))

/** The admin server with settings from the environment, over the given options. */
export const layerConfig = (
  options: Omit<AdminServerOptions, "port" | "host" | "token" | "hidePayloads"> = {}
): Layer.Layer<never, ServeError | ConfigError.ConfigError, JobStore> =>
  Layer.unwrapEffect(Effect.map(config, (settings) => layer({ ...options, ...settings })))
