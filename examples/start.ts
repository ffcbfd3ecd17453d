/**
 * `npm start`: the whole example on one machine. It prepares the database (the embedded SQLite
 * file `conveyor.db`, or PostgreSQL when `DATABASE_URL` is set), starts the fake webhook
 * receiver, then the API and the worker (with the dashboard) as two processes, as they would run
 * in production, and prints where to look. Ctrl-C or SIGTERM stops both; the worker drains its jobs first.
 */
import { Command } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Config, Console, Effect, Layer, Option } from "effect"
import { Telemetry } from "conveyor"
import { FakeReceiver } from "./fakeReceiver.js"
import { DatabaseLive } from "./infrastructure.js"
import { Workspaces } from "./workspaces.js"

/** Runs one entry point as a child process for the life of the scope; it fails if the child exits. */
const runChild = (entry: string) =>
  Command.make(process.execPath, "--import", "tsx", entry).pipe(
    Command.stdout("inherit"),
    Command.stderr("inherit"),
    Command.start,
    // Closing the scope sends the child SIGTERM and waits for it to exit.
    Effect.flatMap((child) => child.exitCode),
    Effect.flatMap((code) => Effect.dieMessage(`${entry} exited with code ${code}`))
  )

/** A workspace with one endpoint on the fake receiver, so there is something to try at once. */
const demoWorkspace = (receiverUrl: string) =>
  Effect.gen(function*() {
    const workspaces = yield* Workspaces
    const existing = yield* workspaces.ids
    if (existing[0] !== undefined) return existing[0]
    const workspace = yield* workspaces.create({ name: "demo", eventLimit: 1000 })
    yield* workspaces.addEndpoint(workspace.id, `${receiverUrl}/hooks/demo`)
    return workspace.id
  })

const program = Effect.gen(function*() {
  const receiver = yield* FakeReceiver
  const workspaceId = yield* demoWorkspace(receiver.url).pipe(Effect.provide(DatabaseLive))
  const apiPort = yield* Config.port("API_PORT").pipe(Config.withDefault(3000))
  const metricsPort = yield* Config.port("CONVEYOR_METRICS_PORT").pipe(Config.withDefault(9464))
  const adminPort = yield* Config.port("CONVEYOR_ADMIN_PORT").pipe(Config.withDefault(9400))
  const database = Option.isSome(yield* Config.option(Config.redacted("DATABASE_URL")))
    ? "PostgreSQL (DATABASE_URL)"
    : `SQLite (${yield* Config.string("CONVEYOR_SQLITE_FILE").pipe(Config.withDefault("conveyor.db"))})`
  const api = `http://127.0.0.1:${apiPort}`
  yield* Console.log([
    "",
    `Conveyor example on ${database}`,
    `  API            ${api}   (conveyor-example-api)`,
    `  dashboard      http://127.0.0.1:${adminPort}/   (served by the worker; admin API under /api)`,
    `  worker metrics http://127.0.0.1:${metricsPort}/metrics   (conveyor-example-worker)`,
    `  fake receiver  ${receiver.url}/hooks/<name>`,
    "",
    "Publish an event; the worker delivers it to the demo workspace's endpoint:",
    `  curl -s -X POST ${api}/workspaces/${workspaceId}/events -H 'content-type: application/json' -d '{"type":"invoice.paid","data":{"amount":42}}'`,
    `  curl -s ${api}/workspaces/${workspaceId}/events/<event id>      # each delivery's job state`,
    `  curl -s ${receiver.url}/hooks/demo                               # what the receiver got`,
    "More in docs/getting-started.md. Ctrl-C to stop.",
    ""
  ].join("\n"))
  yield* Effect.all([runChild("examples/api.ts"), runChild("examples/worker.ts")], { concurrency: "unbounded" })
})

const MainLive = Layer.mergeAll(FakeReceiver.layerConfig, NodeContext.layer).pipe(
  Layer.provideMerge(Telemetry.layerLogger({ serviceName: "conveyor-example" }))
)

program.pipe(Effect.scoped, Effect.provide(MainLive), NodeRuntime.runMain({ disablePrettyLogger: true }))
