/**
 * The admin server: the `AdminApi` handlers over the shared operations, its security (bearer
 * token, same-origin actions, body limit, loopback-only without a token) and the dashboard.
 */
import * as Crypto from "node:crypto"
import { fileURLToPath } from "node:url"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import type { HttpApp } from "@effect/platform"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { AdminApi, AdminAuth, NotReady, Readiness, SameOriginOnly, StoreUnavailable } from "../AdminApi.js"
import type { StoreError } from "../Errors.js"
import { Worker } from "../Worker.js"
import { makeOperations, type OperationsOptions } from "../internal/operations.js"

export interface ServerSettings extends OperationsOptions {
  /** Without a token the server only answers on loopback. */
  readonly token: Option.Option<Redacted.Redacted>
  /** Largest accepted request body. */
  readonly maxBodyBytes: number
  /** Prometheus text exposition for `/metrics`. */
  readonly metrics: Effect.Effect<string>
}

const loopbackHosts = new Set(["localhost", "127.0.0.1", "[::1]", "::1"])

/** Whether a `Host` header names this machine's loopback interface (any port). */
export const isLoopbackHost = (host: string | undefined): boolean => {
  if (host === undefined) return false
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0]!
  return loopbackHosts.has(name.toLowerCase())
}

/** Compares secrets in constant time, whatever their lengths. */
const sameSecret = (supplied: string, expected: string) =>
  Crypto.timingSafeEqual(
    Crypto.createHash("sha256").update(supplied).digest(),
    Crypto.createHash("sha256").update(expected).digest()
  )

const AuthLive = (token: Option.Option<Redacted.Redacted>) =>
  Layer.succeed(AdminAuth, {
    bearer: (supplied) =>
      Option.match(token, {
        // No token: the server listens on loopback only, and anyone there may use it.
        onNone: () => Effect.void,
        onSome: (expected) =>
          sameSecret(Redacted.value(supplied), Redacted.value(expected))
            ? Effect.void
            : Effect.fail(new HttpApiError.Unauthorized())
      })
  })

/**
 * Browsers say where a request comes from: `Sec-Fetch-Site` (modern browsers), else `Origin`.
 * A request with neither comes from a program (curl, the CLI), which is not a cross-site risk.
 */
export const isCrossSite = (headers: Readonly<Record<string, string | undefined>>): boolean => {
  const site = headers["sec-fetch-site"]
  if (site !== undefined) return site !== "same-origin" && site !== "none"
  const origin = headers["origin"]
  if (origin === undefined) return false
  try {
    return new URL(origin).host !== headers["host"]
  } catch {
    return true
  }
}

const SameOriginLive = Layer.succeed(
  SameOriginOnly,
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    isCrossSite(request.headers) ? Effect.fail(new HttpApiError.Forbidden()) : Effect.void)
)

const storeUnavailable = (error: StoreError) =>
  Effect.zipRight(
    Effect.logError("admin API: the job store failed", error),
    Effect.fail(new StoreUnavailable({ message: "the job store did not answer; see the server log" }))
  )

/** Store failures become a 503 whose details stay in the server's log. */
const answer = <A, E>(effect: Effect.Effect<A, E | StoreError>): Effect.Effect<A, Exclude<E, StoreError> | StoreUnavailable> =>
  Effect.catchIf(
    effect,
    (error): error is StoreError => (error as { _tag?: unknown })._tag === "StoreError",
    storeUnavailable
  ) as Effect.Effect<A, Exclude<E, StoreError> | StoreUnavailable>

/** Query parameters without the absent ones (the store's filter has no `undefined` fields). */
const definedOnly = <T extends object>(params: T) =>
  Object.fromEntries(Object.entries(params).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>
  }

const handlersLayer = (settings: ServerSettings) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const ops = yield* makeOperations(settings)
    const worker = yield* Effect.serviceOption(Worker)
    const workerId = Option.getOrNull(Option.map(worker, (w) => w.id))

    const Health = HttpApiBuilder.group(AdminApi, "health", (handlers) =>
      handlers
        .handle("healthz", () => Effect.succeed({ status: "ok" as const }))
        .handle("readyz", () =>
          ops.ping.pipe(
            Effect.timeout(Duration.seconds(2)),
            Effect.match({
              onFailure: () => new NotReady({ store: "unreachable", worker: workerId }),
              onSuccess: () => new Readiness({ store: "ok", worker: workerId })
            }),
            Effect.flatMap((result) => result instanceof NotReady ? Effect.fail(result) : Effect.succeed(result))
          ))
        .handle("metrics", () => settings.metrics))

    const Jobs = HttpApiBuilder.group(AdminApi, "jobs", (handlers) =>
      handlers
        .handle("list", ({ urlParams }) => answer(ops.listJobs(definedOnly(urlParams))))
        .handle("get", ({ path }) => answer(ops.getJob(path.id)))
        .handle("enqueue", ({ payload }) => answer(ops.enqueue(payload)))
        .handle("retry", ({ path }) => answer(ops.retryJob(path.id)))
        .handle("cancel", ({ path }) => answer(ops.cancelJob(path.id))))

    const Queues = HttpApiBuilder.group(AdminApi, "queues", (handlers) =>
      handlers
        .handle("list", () => answer(ops.queues))
        .handle("pause", ({ path }) => answer(ops.pauseQueue(path.queue)))
        .handle("resume", ({ path }) => answer(ops.resumeQueue(path.queue))))

    const Cron = HttpApiBuilder.group(AdminApi, "cron", (handlers) => handlers.handle("list", () => answer(ops.cron)))

    const Stats = HttpApiBuilder.group(AdminApi, "stats", (handlers) => handlers.handle("get", () => answer(ops.stats())))

    return Layer.mergeAll(Health, Jobs, Queues, Cron, Stats)
  }))

const securityHeaders = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store"
}

const dashboardPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** The dashboard: one page and its script and style, read once at start. */
const DashboardLive = Layer.unwrapEffect(Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const read = (file: string) => fs.readFileString(fileURLToPath(new URL(`./dashboard/${file}`, import.meta.url)))
  const [page, script, style] = yield* Effect.all([read("index.html"), read("app.js"), read("style.css")]).pipe(Effect.orDie)
  const headers = { "content-security-policy": dashboardPolicy }
  return HttpApiBuilder.Router.use((router) =>
    Effect.all([
      router.get("/", Effect.succeed(HttpServerResponse.text(page, { contentType: "text/html; charset=utf-8", headers }))),
      router.get("/dashboard.js", Effect.succeed(HttpServerResponse.text(script, { contentType: "text/javascript; charset=utf-8" }))),
      router.get("/dashboard.css", Effect.succeed(HttpServerResponse.text(style, { contentType: "text/css; charset=utf-8" })))
    ])
  )
}))

/**
 * Guards in front of every route: without a token, only loopback host names are answered (so a
 * page on another site cannot reach the server through DNS rebinding); bodies over the limit are
 * refused before they are read; responses carry conservative security headers.
 */
const guard = (settings: ServerSettings) => (app: HttpApp.Default): HttpApp.Default =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (Option.isNone(settings.token) && !isLoopbackHost(request.headers["host"])) {
      return HttpServerResponse.unsafeJson({ error: "this server answers on loopback only" }, { status: 421 })
    }
    const length = Number(request.headers["content-length"] ?? "0")
    if (!Number.isFinite(length) || length > settings.maxBodyBytes) {
      return HttpServerResponse.unsafeJson(
        { error: `request body over the limit of ${settings.maxBodyBytes} bytes` },
        { status: 413 }
      )
    }
    // Bodies sent without a length are cut off at the limit while they are read.
    return yield* HttpIncomingMessage.withMaxBodySize(app, Option.some(settings.maxBodyBytes))
  }).pipe(Effect.map(HttpServerResponse.setHeaders(securityHeaders)))

/** The admin app on whatever `HttpServer` is provided. */
export const serverLayer = (settings: ServerSettings) =>
  HttpApiBuilder.serve(guard(settings)).pipe(
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
    Layer.provide(DashboardLive),
    Layer.provide(HttpApiBuilder.api(AdminApi)),
    Layer.provide(handlersLayer(settings)),
    Layer.provide(AuthLive(settings.token)),
    Layer.provide(SameOriginLive)
  )
