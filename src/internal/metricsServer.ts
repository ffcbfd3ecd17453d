/**
 * `GET /metrics` over `@effect/platform`'s HTTP server. Kept out of `Telemetry` so that
 * importing Conveyor does not load the HTTP stack: `Telemetry.layerMetricsServer` loads this
 * module when a server is wanted, and `conveyor/admin` exports the router.
 */
import { createServer } from "node:http"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer } from "effect"
import * as Prometheus from "./prometheus.js"

export interface MetricsServerOptions {
  /** Default 9464, the port OpenTelemetry's Prometheus exporter uses. */
  readonly port?: number
  /** Default `"0.0.0.0"`, for a scraper in another container. */
  readonly host?: string
}

/** `GET /metrics`, for mounting in any `HttpRouter`. */
export const metricsRouter: HttpRouter.HttpRouter = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/metrics",
    Effect.map(Prometheus.prometheusText, (text) => HttpServerResponse.text(text, { contentType: Prometheus.contentType }))
  )
)

/** A small HTTP server for `GET /metrics`. Scrapes are not traced. */
export const layerMetricsServer = (options: MetricsServerOptions): Layer.Layer<never, ServeError> =>
  HttpServer.serve(metricsRouter).pipe(
    HttpServer.withLogAddress,
    HttpMiddleware.withTracerDisabledForUrls(["/metrics"]),
    Layer.provide(NodeHttpServer.layer(() => createServer(), { port: options.port ?? 9464, host: options.host ?? "0.0.0.0" }))
  )
