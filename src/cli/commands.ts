/**
 * The `conveyor` commands, built with `@effect/cli`. Each command opens the store it needs
 * (`--database-url`, else `DATABASE_URL`, else the SQLite file), does one thing, and closes it.
 * Reads take `--json` and print the admin API's shapes; failures are one line on stderr and a
 * non-zero exit code (see `main.ts`).
 */
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { Args, Command, Options } from "@effect/cli"
import { Config, Console, Duration, Effect, Layer, Logger, LogLevel, Option, type Redacted, Schema } from "effect"
import { CronView, JobPage, JobView, QueueView, StatsView } from "../AdminApi.js"
import * as CronScheduler from "../CronScheduler.js"
import type { WorkerModule } from "../cli.js"
import { JobState } from "../JobStore.js"
import * as Telemetry from "../Telemetry.js"
import * as Worker from "../Worker.js"
import * as WorkerConfig from "../WorkerConfig.js"
import { makeOperations, type OperationsOptions } from "../internal/operations.js"
import { commandLogger, firstLine, printJson, progress, progressDone, table, time } from "./output.js"
import { migrate, storeLayerFor } from "./store.js"

/** The worker module could not be loaded or is not one. */
export class BadWorkerModule extends Schema.TaggedError<BadWorkerModule>()("BadWorkerModule", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot use worker module ${this.path}: ${this.reason}`
  }
}

/** Bad command-line input that the option parser cannot see (JSON, durations). */
export class BadInput extends Schema.TaggedError<BadInput>()("BadInput", {
  message: Schema.String
}) {}

// --- shared options --------------------------------------------------------------------------

const databaseUrl = Options.redacted("database-url").pipe(
  Options.withDescription("PostgreSQL (postgres://...) or SQLite (sqlite:<file>) URL; default: DATABASE_URL, else the SQLite file"),
  Options.optional
)
const json = Options.boolean("json").pipe(Options.withDescription("print JSON (the admin API's shapes)"))
const moduleOption = Options.file("module", { exists: "yes" }).pipe(
  Options.withDescription("worker module: its job definitions validate payloads, its schedules are listed"),
  Options.optional
)
const queueFilter = Options.text("queue").pipe(Options.withDescription("only this queue"), Options.optional)
const nameFilter = Options.text("name").pipe(Options.withDescription("only jobs with this name"), Options.optional)
const stateFilter = Options.choice("state", JobState.literals).pipe(Options.withDescription("only jobs in this state"), Options.optional)

const loadModule = Effect.fn("Cli.loadModule")(
  function*(file: string) {
    const url = pathToFileURL(Path.resolve(file)).href
    const loaded = yield* Effect.tryPromise({
      try: () => import(url) as Promise<{ readonly default?: unknown }>,
      catch: (cause) => new BadWorkerModule({ path: file, reason: cause instanceof Error ? cause.message : String(cause) })
    })
    const candidate = loaded.default as Partial<WorkerModule> | undefined
    if (candidate === undefined || candidate === null || !Array.isArray(candidate.handlers)) {
      return yield* new BadWorkerModule({ path: file, reason: "its default export is not a worker (export default defineWorker({ handlers }) from \"conveyor/cli\")" })
    }
    return candidate as WorkerModule
  }
)

const operationsOptions = (module: Option.Option<WorkerModule>): OperationsOptions =>
  Option.match(module, {
    onNone: () => ({}),
    onSome: (m) => ({
      jobs: m.handlers.map((handler) => handler.job),
      ...(m.schedules === undefined ? {} : { schedules: m.schedules })
    })
  })

/** Runs `f` with the operations over the chosen store. */
const withOperations = <A, E, R>(
  url: Option.Option<Redacted.Redacted>,
  module: Option.Option<string>,
  f: (ops: Effect.Effect.Success<ReturnType<typeof makeOperations>>) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const loaded = yield* Effect.transposeOption(Option.map(module, loadModule))
    const ops = yield* makeOperations(operationsOptions(loaded))
    return yield* f(ops)
  }).pipe(
    Effect.provide(storeLayerFor(url)),
    // A short command's output is what it prints; the store's start-up notes would be noise.
    Logger.withMinimumLogLevel(LogLevel.Warning)
  )

const parseJson = (text: string) =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (error) => new BadInput({ message: `payload is not valid JSON: ${error instanceof Error ? error.message : String(error)}` })
  })

// --- jobs ------------------------------------------------------------------------------------

const printJobs = (page: JobPage) => {
  if (page.jobs.length === 0) return Console.log("no jobs")
  const rows = page.jobs.map((job) => [
    job.id,
    job.name,
    job.queue,
    job.state,
    `${job.attempt}/${job.maxAttempts}`,
    time(job.runAt),
    firstLine(job.errors.at(-1)?.message ?? "")
  ])
  const more = page.hasMore ? `\n(more: --offset ${page.offset + page.limit})` : ""
  return Console.log(table(["ID", "JOB", "QUEUE", "STATE", "ATTEMPT", "RUN AT", "LAST ERROR"], rows) + more)
}

const printJob = (job: JobView) => {
  const fields: Array<[string, string]> = [
    ["id", job.id],
    ["job", job.name],
    ["queue", job.queue],
    ["state", job.cancelRequested ? `${job.state} (cancel requested)` : job.state],
    ["attempt", `${job.attempt} of ${job.maxAttempts}`],
    ["priority", String(job.priority)],
    ["trigger", job.trigger],
    ["tenant", job.tenantId ?? "-"],
    ["enqueued", time(job.enqueuedAt)],
    ["run at", time(job.runAt)],
    ["attempted", time(job.attemptedAt)],
    ["finished", time(job.finishedAt)],
    ["worker", job.workerId ?? "-"],
    ["payload", job.payloadHidden ? "(hidden)" : JSON.stringify(job.payload)]
  ]
  if (job.result !== null) fields.push(["result", JSON.stringify(job.result)])
  const width = Math.max(...fields.map(([key]) => key.length))
  const lines = fields.map(([key, value]) => `${key.padEnd(width)}  ${value}`)
  const errors = job.errors.map((error) =>
    `  attempt ${error.attempt} (${error.kind}, ${time(error.at)}): ${error.message.split("\n").join("\n    ")}`
  )
  return Console.log([...lines, errors.length > 0 ? `errors\n${errors.join("\n")}` : "errors    none"].join("\n"))
}

const jobsList = Command.make(
  "list",
  {
    databaseUrl,
    json,
    queue: queueFilter,
    state: stateFilter,
    name: nameFilter,
    limit: Options.integer("limit").pipe(Options.withDefault(20), Options.withDescription("jobs per page (1-500)")),
    offset: Options.integer("offset").pipe(Options.withDefault(0), Options.withDescription("jobs to skip"))
  },
  (args) =>
    Effect.gen(function*() {
      if (args.limit < 1 || args.limit > 500) return yield* new BadInput({ message: "--limit must be between 1 and 500" })
      if (args.offset < 0) return yield* new BadInput({ message: "--offset must not be negative" })
      const filter = {
        limit: args.limit,
        offset: args.offset,
        ...Option.match(args.queue, { onNone: () => ({}), onSome: (queue) => ({ queue }) }),
        ...Option.match(args.state, { onNone: () => ({}), onSome: (state) => ({ state }) }),
        ...Option.match(args.name, { onNone: () => ({}), onSome: (name) => ({ name }) })
      }
      const page = yield* withOperations(args.databaseUrl, Option.none(), (ops) => ops.listJobs(filter))
      yield* args.json ? printJson(JobPage, page) : printJobs(page)
    })
).pipe(Command.withDescription("list jobs, newest first"))

const idArg = Args.text({ name: "id" }).pipe(Args.withDescription("the job's id"))

const jobsShow = Command.make("show", { databaseUrl, json, id: idArg }, (args) =>
  Effect.flatMap(
    withOperations(args.databaseUrl, Option.none(), (ops) => ops.getJob(args.id)),
    (job) => (args.json ? printJson(JobView, job) : printJob(job))
  )).pipe(Command.withDescription("show a job: payload, attempts, errors, timings"))

const retryAll = (
  url: Option.Option<Redacted.Redacted>,
  filter: { queue: Option.Option<string>; name: Option.Option<string>; state: Option.Option<JobState> }
) =>
  withOperations(url, Option.none(), (ops) =>
    Effect.gen(function*() {
      const state = Option.getOrElse(filter.state, () => "discarded" as const)
      if (state !== "discarded" && state !== "cancelled" && state !== "retryable") {
        return yield* new BadInput({ message: "--all retries discarded, cancelled or retryable jobs" })
      }
      const base = {
        state,
        limit: 100,
        ...Option.match(filter.queue, { onNone: () => ({}), onSome: (queue) => ({ queue }) }),
        ...Option.match(filter.name, { onNone: () => ({}), onSome: (name) => ({ name }) })
      }
      // Retried jobs leave the filter, so the first page is read again until nothing new is on it.
      const seen = new Set<string>()
      let retried = 0
      while (true) {
        const page = yield* ops.listJobs({ ...base, offset: 0 })
        const fresh = page.jobs.filter((job) => !seen.has(job.id))
        if (fresh.length === 0) break
        for (const job of fresh) {
          seen.add(job.id)
          const after = yield* ops.retryJob(job.id)
          if (after.state === "available") retried++
          yield* progress(`retrying ${state} jobs: ${retried} done`)
        }
      }
      yield* progressDone
      return { retried, skipped: seen.size - retried }
    }))

const jobsRetry = Command.make(
  "retry",
  {
    databaseUrl,
    id: idArg.pipe(Args.optional),
    all: Options.boolean("all").pipe(Options.withDescription("retry every job matching the filters (default: discarded)")),
    queue: queueFilter,
    name: nameFilter,
    state: stateFilter,
    json
  },
  (args) =>
    Effect.gen(function*() {
      if (args.all === Option.isSome(args.id)) {
        return yield* new BadInput({ message: "give a job id, or --all (with optional --queue, --name, --state)" })
      }
      if (Option.isSome(args.id)) {
        const job = yield* withOperations(args.databaseUrl, Option.none(), (ops) => ops.retryJob(args.id.pipe(Option.getOrThrow)))
        return yield* args.json ? printJson(JobView, job) : Console.log(`job ${job.id} is ${job.state}`)
      }
      const result = yield* retryAll(args.databaseUrl, args)
      yield* args.json
        ? Console.log(JSON.stringify(result))
        : Console.log(`retried ${result.retried} jobs${result.skipped > 0 ? ` (${result.skipped} could not be retried)` : ""}`)
    })
).pipe(Command.withDescription("make a failed, cancelled or waiting job available now"))

const jobsCancel = Command.make("cancel", { databaseUrl, json, id: idArg }, (args) =>
  Effect.flatMap(
    withOperations(args.databaseUrl, Option.none(), (ops) => ops.cancelJob(args.id)),
    (job) =>
      args.json
        ? printJson(JobView, job)
        : Console.log(
          job.state === "running"
            ? `job ${job.id} is running: its worker has been asked to stop it`
            : `job ${job.id} is ${job.state}`
        )
  )).pipe(Command.withDescription("cancel a job; a running job is interrupted on its worker"))

const jobs = Command.make("jobs").pipe(
  Command.withDescription("list, show, retry and cancel jobs"),
  Command.withSubcommands([jobsList, jobsShow, jobsRetry, jobsCancel])
)

// --- enqueue ---------------------------------------------------------------------------------

const enqueue = Command.make(
  "enqueue",
  {
    databaseUrl,
    module: moduleOption,
    json,
    job: Args.text({ name: "job" }).pipe(Args.withDescription("the job's name")),
    payload: Args.text({ name: "json" }).pipe(Args.withDescription("the payload as JSON")),
    queue: Options.text("queue").pipe(Options.withDescription("queue (default: the job's, else \"default\")"), Options.optional),
    delay: Options.text("delay").pipe(Options.withDescription("run after this long, e.g. \"10 minutes\""), Options.optional),
    priority: Options.integer("priority").pipe(Options.withDescription("lower runs first"), Options.optional),
    uniqueKey: Options.text("unique-key").pipe(Options.withDescription("skip if a live job has this key"), Options.optional)
  },
  (args) =>
    Effect.gen(function*() {
      const payload = yield* parseJson(args.payload)
      const delay = yield* Effect.transposeOption(Option.map(args.delay, (text) =>
        Option.match(Duration.decodeUnknown(text), {
          onNone: () => Effect.fail(new BadInput({ message: `--delay: not a duration: ${JSON.stringify(text)}` })),
          onSome: Effect.succeed
        })))
      const request = {
        name: args.job,
        payload,
        ...Option.match(args.queue, { onNone: () => ({}), onSome: (queue) => ({ queue }) }),
        ...Option.match(delay, { onNone: () => ({}), onSome: (d) => ({ delaySeconds: Duration.toSeconds(d) }) }),
        ...Option.match(args.priority, { onNone: () => ({}), onSome: (priority) => ({ priority }) }),
        ...Option.match(args.uniqueKey, { onNone: () => ({}), onSome: (uniqueKey) => ({ uniqueKey }) })
      }
      const result = yield* withOperations(args.databaseUrl, args.module, (ops) => ops.enqueue(request))
      yield* args.json
        ? Console.log(JSON.stringify(result))
        : Console.log(result.inserted ? `enqueued job ${result.id}` : `a live job with that unique key exists: ${result.id}`)
    })
).pipe(Command.withDescription("enqueue a job (validated with its definition when --module is given)"))

// --- queues ----------------------------------------------------------------------------------

const printQueues = (queues: ReadonlyArray<QueueView>) =>
  queues.length === 0 ? Console.log("no queues") : Console.log(table(
    ["QUEUE", "PAUSED", "SCHEDULED", "AVAILABLE", "RUNNING", "RETRYABLE", "COMPLETED", "CANCELLED", "DISCARDED"],
    queues.map((q) => [
      q.queue,
      q.paused ? "yes" : "no",
      ...[q.counts.scheduled, q.counts.available, q.counts.running, q.counts.retryable, q.counts.completed, q.counts.cancelled, q.counts.discarded]
        .map(String)
    ])
  ))

const queuesList = Command.make("list", { databaseUrl, json }, (args) =>
  Effect.flatMap(withOperations(args.databaseUrl, Option.none(), (ops) => ops.queues), (queues) =>
    args.json ? printJson(Schema.Array(QueueView), queues) : printQueues(queues))).pipe(
    Command.withDescription("queues with their jobs counted by state")
  )

const queueArg = Args.text({ name: "queue" })

const queuesPause = Command.make("pause", { databaseUrl, queue: queueArg }, (args) =>
  Effect.flatMap(
    withOperations(args.databaseUrl, Option.none(), (ops) => ops.pauseQueue(args.queue)),
    (queue) => Console.log(`queue ${queue.queue} is paused on every worker`)
  )).pipe(Command.withDescription("stop every worker from claiming jobs of a queue"))

const queuesResume = Command.make("resume", { databaseUrl, queue: queueArg }, (args) =>
  Effect.flatMap(
    withOperations(args.databaseUrl, Option.none(), (ops) => ops.resumeQueue(args.queue)),
    (queue) => Console.log(`queue ${queue.queue} is running`)
  )).pipe(Command.withDescription("let workers claim jobs of a paused queue again"))

const queues = Command.make("queues").pipe(
  Command.withDescription("list, pause and resume queues"),
  Command.withSubcommands([queuesList, queuesPause, queuesResume])
)

// --- cron, stats -----------------------------------------------------------------------------

const cronList = Command.make("list", { databaseUrl, json, module: moduleOption }, (args) =>
  Effect.flatMap(withOperations(args.databaseUrl, args.module, (ops) => ops.cron), (schedules) =>
    args.json
      ? printJson(Schema.Array(CronView), schedules)
      : schedules.length === 0
      ? Console.log("no cron schedules")
      : Console.log(table(
        ["SCHEDULE", "EXPRESSION", "JOB", "LAST RUN", "NEXT RUN"],
        schedules.map((s) => [s.schedule, s.cron === null ? "-" : `${s.cron} ${s.timeZone}`, s.job ?? "-", time(s.lastTick), time(s.nextRun)])
      )))).pipe(Command.withDescription("cron schedules with their last and next runs (pass --module for next runs)"))

const cron = Command.make("cron").pipe(Command.withDescription("cron schedules"), Command.withSubcommands([cronList]))

const stats = Command.make("stats", { databaseUrl, json }, (args) =>
  Effect.flatMap(withOperations(args.databaseUrl, Option.none(), (ops) => ops.stats()), (s) =>
    args.json ? printJson(StatsView, s) : Console.log([
      `jobs: ${s.totals.available} available, ${s.totals.scheduled} scheduled, ${s.totals.running} running, ` +
      `${s.totals.retryable} retryable, ${s.totals.completed} completed, ${s.totals.cancelled} cancelled, ${s.totals.discarded} discarded`,
      `queues: ${s.queues} (${s.pausedQueues} paused)`,
      `last hour: ${s.completed} completed, ${s.discarded} discarded` +
      (s.failureRate === null ? "" : `, failure rate ${(s.failureRate * 100).toFixed(1)}%`)
    ].join("\n")))).pipe(Command.withDescription("job counts and the last hour's throughput"))

// --- migrate, worker -------------------------------------------------------------------------

const migrateCommand = Command.make("migrate", { databaseUrl }, (args) =>
  Effect.gen(function*() {
    yield* progress("migrating…")
    const { applied, target } = yield* migrate(args.databaseUrl)
    yield* progressDone
    yield* applied.length === 0
      ? Console.log(`${target.description}: schema is up to date`)
      : Console.log(`${target.description}: applied ${applied.map((m) => `${m.id}_${m.name}`).join(", ")}`)
  })).pipe(Command.withDescription("create or upgrade the store's schema (idempotent)"))

const worker = Command.make(
  "worker",
  {
    databaseUrl,
    module: Args.file({ name: "module", exists: "yes" }).pipe(Args.withDescription("module whose default export is Cli.defineWorker({...})")),
    concurrency: Options.integer("concurrency").pipe(Options.withDescription("jobs running at once"), Options.optional),
    adminPort: Options.integer("admin-port").pipe(
      Options.withDescription("serve the admin API and dashboard on this port (or set CONVEYOR_ADMIN_PORT)"),
      Options.optional
    )
  },
  (args) =>
    Effect.gen(function*() {
      const module = yield* loadModule(args.module)
      const adminPortConfigured = yield* Config.option(Config.port("CONVEYOR_ADMIN_PORT"))
      const adminWanted = Option.isSome(args.adminPort) || Option.isSome(adminPortConfigured)
      // The admin server is loaded, and its settings (the token above all) read and checked, only
      // when it is wanted: a worker without it does not load the HTTP server.
      const AdminServer = adminWanted ? yield* Effect.promise(() => import("../AdminServer.js")) : undefined
      const adminSettings = AdminServer === undefined ? {} : yield* AdminServer.config
      const concurrency = Option.getOrUndefined(args.concurrency)
      if (concurrency !== undefined && concurrency < 1) return yield* new BadInput({ message: "--concurrency must be at least 1" })

      const workerLayer = Worker.layer({
        handlers: module.handlers,
        ...(module.jobLayer === undefined ? {} : { jobLayer: module.jobLayer }),
        ...module.worker,
        ...(concurrency === undefined ? {} : { concurrency })
      }) as Layer.Layer<Worker.Worker, never, never>
      const admin = AdminServer !== undefined
        ? AdminServer.layer({
          ...adminSettings,
          port: Option.getOrElse(args.adminPort, () => adminSettings.port ?? AdminServer.defaultPort),
          jobs: module.handlers.map((handler) => handler.job),
          ...(module.schedules === undefined ? {} : { schedules: module.schedules })
        })
        : Layer.empty
      const scheduler = module.schedules === undefined || module.schedules.length === 0
        ? Layer.empty
        : CronScheduler.layer({ schedules: module.schedules })
      const store = storeLayerFor(args.databaseUrl)
      const services = module.layer === undefined ? store : Layer.provideMerge(module.layer, store)
      // The admin server starts after the worker (its readiness names it) and stops before it.
      const main = admin.pipe(
        Layer.provideMerge(workerLayer),
        Layer.merge(Telemetry.layerQueueDepth("15 seconds")),
        Layer.merge(scheduler),
        Layer.provide(WorkerConfig.layerConfig),
        Layer.provide(services)
      )
      return yield* Layer.launch(main as unknown as Layer.Layer<never, unknown, never>).pipe(
        // Traces, metrics and logs as the environment asks (OTEL_*, CONVEYOR_LOG_FORMAT/LEVEL),
        // around everything the worker runs, in place of the short commands' stderr logger.
        Effect.provide(Telemetry.layerFromEnv({ serviceName: "conveyor-worker" })),
        Effect.provide(Logger.remove(commandLogger))
      )
    })
).pipe(Command.withDescription("run a worker for the jobs of a module until SIGINT/SIGTERM (then drain)"))

// --- the command ------------------------------------------------------------------------------

export const cli = Command.make("conveyor").pipe(
  Command.withDescription("Conveyor: run workers and operate the job store"),
  Command.withSubcommands([migrateCommand, worker, enqueue, jobs, queues, cron, stats])
)

/** Run the CLI on `argv` (as `process.argv`: node, script, then arguments). */
export const run = Command.run(cli, { name: "conveyor", version: "0.1.0" })
