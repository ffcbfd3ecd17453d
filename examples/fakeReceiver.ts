/**
 * A stand-in for the outside world: an HTTP server on 127.0.0.1 that receives the example's
 * webhooks, so nothing leaves the machine. Register `http://127.0.0.1:4010/hooks/<name>` as an
 * endpoint; how it answers depends on the name:
 *
 * - `gone...`: 410 Gone (the job cancels itself and disables the endpoint)
 * - `busy...`: 429 with `Retry-After: 5` (the job snoozes)
 * - `down...`: 503 (the job fails and is retried with backoff)
 * - anything else: 200
 *
 * `GET /hooks/<name>` lists what that name received.
 */
import { createServer } from "node:http"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Config, Context, Effect, Layer, Ref } from "effect"

export interface Received {
  readonly hook: string
  readonly workspaceId: string | undefined
  readonly signature: string | undefined
  readonly body: unknown
}

export class FakeReceiver extends Context.Tag("example/FakeReceiver")<FakeReceiver, {
  /** Where it listens, e.g. `http://127.0.0.1:4010`. */
  readonly url: string
  readonly received: Effect.Effect<ReadonlyArray<Received>>
}>() {
  /** On `port` (0: any free port). */
  static readonly layer = (port: number) =>
    Layer.scoped(
      FakeReceiver,
      Effect.gen(function*() {
        const received = yield* Ref.make<ReadonlyArray<Received>>([])
        const hookName = Effect.map(HttpRouter.params, (params) => params.hook ?? "")
        const router = HttpRouter.empty.pipe(
          HttpRouter.post(
            "/hooks/:hook",
            Effect.gen(function*() {
              const hook = yield* hookName
              const request = yield* HttpServerRequest.HttpServerRequest
              const body = yield* Effect.orElseSucceed(request.json, () => null)
              yield* Ref.update(received, (all) => [...all, {
                hook,
                workspaceId: request.headers["x-workspace-id"],
                signature: request.headers["x-signature"],
                body
              }])
              if (hook.startsWith("gone")) return HttpServerResponse.empty({ status: 410 })
              if (hook.startsWith("busy")) return HttpServerResponse.empty({ status: 429, headers: { "retry-after": "5" } })
              if (hook.startsWith("down")) return HttpServerResponse.empty({ status: 503 })
              return HttpServerResponse.empty({ status: 200 })
            })
          ),
          HttpRouter.get(
            "/hooks/:hook",
            Effect.gen(function*() {
              const hook = yield* hookName
              const all = yield* Ref.get(received)
              return yield* HttpServerResponse.json(all.filter((r) => r.hook === hook))
            })
          )
        )
        const server = yield* Layer.build(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" }))
        yield* HttpServer.serveEffect(router).pipe(Effect.provide(server))
        const address = Context.get(server, HttpServer.HttpServer).address
        const url = address._tag === "TcpAddress" ? `http://127.0.0.1:${address.port}` : "http://127.0.0.1"
        return { url, received: Ref.get(received) }
      })
    )

  /** On `FAKE_RECEIVER_PORT` (default 4010). */
  static readonly layerConfig = Layer.unwrapEffect(
    Effect.map(Config.port("FAKE_RECEIVER_PORT").pipe(Config.withDefault(4010)), FakeReceiver.layer)
  )
}
