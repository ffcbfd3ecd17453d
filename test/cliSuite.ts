/**
 * The CLI, run as users run it: the real `bin/conveyor.js` in a child process, against a real
 * store. One suite, called once per database (`cliSqlite.test.ts`, `cliPg.test.ts`).
 */
import { fileURLToPath } from "node:url"
import { Command } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import type { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Option, Schedule, Stream, String as Str } from "effect"
import { type JobRecord, type JobState, Settlement, SqlJobStore } from "conveyor"

const bin = fileURLToPath(new URL("../bin/conveyor.js", import.meta.url))
const workerModule = fileURLToPath(new URL("./fixtures/cliWorker.ts", import.meta.url))

export interface CliTarget {
  /** Environment for the child processes (the database they use). */
  readonly env: Record<string, string>
  /** In-process access to the same database, released when the suite ends. */
  readonly client: Layer.Layer<SqlClient.SqlClient, unknown>
  readonly storeOptions: SqlJobStore.SqlJobStoreOptions
}

const text = <E>(stream: Stream.Stream<Uint8Array, E>) => stream.pipe(Stream.decodeText(), Stream.mkString)

/** Only the environment matters to a child process. */
type CliEnv = Pick<CliTarget, "env">

const command = (target: CliEnv, args: ReadonlyArray<string>) =>
  Command.make(process.execPath, bin, ...args).pipe(Command.env({ NO_COLOR: "1", ...target.env }))

/** Run `conveyor ...args` to the end. */
export const conveyor = (target: CliEnv, ...args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const proc = yield* Command.start(command(target, args))
    const [stdout, stderr, exitCode] = yield* Effect.all([text(proc.stdout), text(proc.stderr), proc.exitCode], {
      concurrency: "unbounded"
    })
    return { stdout, stderr, exitCode: Number(exitCode) }
  }))

/** Expect success and return stdout. */
const ok = (target: CliEnv, ...args: ReadonlyArray<string>) =>
  Effect.map(conveyor(target, ...args), (result) => {
    expect(result.stderr, `conveyor ${args.join(" ")}`).toBe("")
    expect(result.exitCode).toBe(0)
    return result.stdout
  })

/** Expect a one-line error and a non-zero exit. */
const fails = (target: CliEnv, ...args: ReadonlyArray<string>) =>
  Effect.map(conveyor(target, ...args), (result) => {
    expect(result.exitCode, `conveyor ${args.join(" ")}`).not.toBe(0)
    expect(result.stdout).toBe("")
    expect(result.stderr).not.toMatch(/^\s+at /m) // never a stack trace
    return result
  })

/** Expect exit code 1 and exactly one line on stderr, matching `message`. */
export const expectOneLineError = (target: CliEnv, args: ReadonlyArray<string>, message: RegExp) =>
  Effect.map(fails(target, ...args), (result) => {
    expect(result.exitCode, args.join(" ")).toBe(1)
    expect(Str.trim(result.stderr).split("\n"), args.join(" ")).toHaveLength(1)
    expect(result.stderr).toMatch(message)
  })

export { fails }


const storeCases: ReadonlyArray<[ReadonlyArray<string>, RegExp]> = [
  [["enqueue", "flaky", "{\"fail\":\"yes\"}", "--module", workerModule], /invalid payload for job "flaky": fail: Expected boolean/],
  [["enqueue", "nope", "{}", "--module", workerModule], /no job definition named "nope"/],
  [["jobs", "show", "123456789"], /no job with id 123456789/],
  [["jobs", "retry", "123456789"], /no job with id 123456789/]
]

const idOf = (output: string) => /enqueued job (\S+)/.exec(output)![1]!

export const cliSuite = (name: string, makeTarget: () => CliTarget) => {
  const target = makeTarget()
  const resources = Layer.mergeAll(target.client, NodeContext.layer)

  describe(`conveyor CLI on ${name}`, () => {
    layer(resources, { excludeTestServices: true, timeout: 120_000 })((it) => {
      /** The job as the store has it, read in this process. */
      const job = (id: string) =>
        Effect.scoped(Effect.flatMap(SqlJobStore.make({ ...target.storeOptions, migrate: false }), (store) => store.get(id))).pipe(
          Effect.map(Option.getOrThrow)
        )
      const waitFor = (id: string, predicate: (job: JobRecord) => boolean, what: string) =>
        job(id).pipe(
          Effect.filterOrFail(predicate, () => new Error(`job ${id} never became ${what}`)),
          Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 150 })
        )
      const inState = (state: JobState) => (job: JobRecord) => job.state === state

      it.effect("migrates the store, idempotently", () =>
        Effect.gen(function*() {
          expect(yield* ok(target, "migrate")).toMatch(/applied 1_jobs/)
          expect(yield* ok(target, "migrate")).toMatch(/schema is up to date/)
        }), 60_000)

      it.scoped("runs a worker that executes, retries and cancels jobs", () =>
        Effect.gen(function*() {
          const worker = yield* Command.start(command(target, ["worker", workerModule, "--concurrency", "4"]))
          // The worker logs JSON lines to stdout (the telemetry logger; stdout is not a terminal).
          const workerLog = yield* Effect.fork(text(worker.stdout))
          const workerErrors = yield* Effect.fork(text(worker.stderr))

          const failing = idOf(yield* ok(target, "enqueue", "flaky", "{\"fail\":true}", "--module", workerModule))
          yield* waitFor(failing, inState("discarded"), "discarded")
          const listed = JSON.parse(yield* ok(target, "jobs", "list", "--state", "discarded", "--queue", "cli", "--json"))
          expect(listed.jobs.map((j: { id: string }) => j.id)).toContain(failing)
          const shown = yield* ok(target, "jobs", "show", failing)
          expect(shown).toMatch(/state\s+discarded/)
          expect(shown).toContain("asked to fail")

          expect(yield* ok(target, "jobs", "retry", failing)).toContain(`job ${failing} is available`)
          const retried = yield* waitFor(failing, (j) => j.state === "discarded" && j.attempt === 2, "discarded again")
          expect(retried.errors).toHaveLength(2)

          const endless = idOf(yield* ok(target, "enqueue", "endless", "{}", "--module", workerModule))
          yield* waitFor(endless, inState("running"), "running")
          expect(yield* ok(target, "jobs", "cancel", endless)).toContain("its worker has been asked to stop it")
          yield* waitFor(endless, inState("cancelled"), "cancelled")

          // SIGTERM drains and exits cleanly.
          yield* worker.kill("SIGTERM")
          const exitCode = yield* worker.exitCode.pipe(Effect.timeout(Duration.seconds(20)))
          expect(Number(exitCode)).toBe(0)
          const log = yield* Fiber.join(workerLog)
          expect(log).toContain("worker stopped")
          expect(JSON.parse(log.split("\n")[0]!)).toMatchObject({ level: expect.any(String) })
          expect(yield* Fiber.join(workerErrors)).toBe("")
        }), 120_000)

      it.effect("lists, pauses and resumes queues; shows stats and cron schedules", () =>
        Effect.gen(function*() {
          idOf(yield* ok(target, "enqueue", "report", "{\"month\":\"2026-11\"}", "--queue", "cli-reports", "--delay", "1 hour"))
          expect(yield* ok(target, "queues", "pause", "cli-reports")).toContain("paused on every worker")
          const queues = JSON.parse(yield* ok(target, "queues", "list", "--json"))
          expect(queues.find((q: { queue: string }) => q.queue === "cli-reports")).toMatchObject({
            paused: true,
            counts: { scheduled: 1 }
          })
          expect(yield* ok(target, "queues", "list")).toMatch(/cli-reports\s+yes\s+1/)
          yield* ok(target, "queues", "resume", "cli-reports")
          expect(JSON.parse(yield* ok(target, "queues", "list", "--json")).find((q: { queue: string }) => q.queue === "cli-reports").paused)
            .toBe(false)
          const [statsOutput, cronOutput] = yield* Effect.all(
            [ok(target, "stats", "--json"), ok(target, "cron", "list", "--json", "--module", workerModule)],
            { concurrency: 2 }
          )
          const stats = JSON.parse(statsOutput)
          expect(stats.totals.scheduled).toBeGreaterThanOrEqual(1)
          expect(stats.throughput).toHaveLength(60)
          const cron = JSON.parse(cronOutput)
          expect(cron).toEqual([expect.objectContaining({ schedule: "nightly-flaky", cron: "0 3 * * *", timeZone: "UTC", job: "flaky", lastTick: null })])
          expect(cron[0].nextRun).toMatch(/T03:00:00/)
        }), 60_000)

      it.scoped("retries every failed job of a queue at once", () =>
        Effect.gen(function*() {
          // Migrating is a no-op after the first test, and lets this one run alone.
          const store = yield* SqlJobStore.make(target.storeOptions)
          const queue = "cli-bulk"
          const insert = {
            name: "flaky", queue, payload: "{\"fail\":true}", priority: 0, maxAttempts: 1, runAt: 0, trigger: "queue" as const,
            tenantId: null, metadata: null, uniqueKey: null, traceContext: null
          }
          yield* store.insert([insert, insert, insert])
          const { jobs } = yield* store.claim({ workerId: "test", queues: [{ queue, limit: 3 }], leaseDuration: Duration.seconds(30) })
          yield* store.settle(jobs.map((job) =>
            Settlement.Discard({ id: job.id, token: job.leaseToken, error: { attempt: 1, at: 0, kind: "failure", message: "x" } })
          ))
          expect(yield* ok(target, "jobs", "retry", "--all", "--queue", queue)).toBe("retried 3 jobs\n")
          const after = yield* store.list({ queue })
          expect(after.map((job) => job.state)).toEqual(["available", "available", "available"])
        }), 60_000)

      it.effect("answers bad input about the store's jobs with one line and a non-zero exit", () =>
        Effect.forEach(storeCases, ([args, message]) => expectOneLineError(target, args, message), {
          concurrency: 3,
          discard: true
        }), 90_000)
    })
  })
}
