/**
 * The API process: `npm run api`. Serves examples/httpApi.ts on `API_PORT` (default 3000);
 * enqueues jobs for the worker processes to run.
 */
import { createServer } from "node:http"
import { HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer } from "effect"
import { ApiLive, apiServiceName } from "./app.js"
import { ProcessLive, TelemetryLive } from "./infrastructure.js"

const HttpServerLive = Layer.unwrapEffect(Effect.map(
  Config.all({
    port: Config.port("API_PORT").pipe(Config.withDefault(3000)),
    host: Config.string("API_HOST").pipe(Config.withDefault("127.0.0.1"))
  }),
  (listen) => NodeHttpServer.layer(createServer, listen)
))

const MainLive = ApiLive.pipe(
  HttpServer.withLogAddress,
  Layer.provide(HttpServerLive),
  Layer.provide(ProcessLive),
  Layer.provide(TelemetryLive(apiServiceName))
)

Layer.launch(MainLive).pipe(NodeRuntime.runMain({ disablePrettyLogger: true }))
