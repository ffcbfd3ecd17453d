/**
 * Input the CLI refuses before it needs any job: one line on stderr and a non-zero exit,
 * whatever the store (this runs on a throwaway SQLite file).
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { expectOneLineError, fails } from "./cliSuite.js"
import { freshSqliteFile, removeSqliteFile } from "./databases.js"

const file = freshSqliteFile("cli-input")
const target = { env: { DATABASE_URL: `sqlite:${file}` } }

const cases: ReadonlyArray<[ReadonlyArray<string>, RegExp]> = [
  [["enqueue", "flaky", "{not json"], /payload is not valid JSON/],
  [["enqueue", "bad name", "{}"], /invalid job name "bad name"/],
  [["enqueue", "flaky", "{}", "--delay", "soon"], /--delay: not a duration/],
  [["queues", "pause", "no/slashes"], /invalid queue name/],
  [["jobs", "list", "--limit", "0"], /--limit must be between 1 and 500/],
  [["jobs", "retry"], /give a job id, or --all/],
  [["jobs", "list", "--database-url", "mysql://localhost/x"], /bad database URL/],
  [["worker", "package.json"], /cannot use worker module package\.json/]
]

describe("conveyor CLI input", () => {
  it.live("answers bad input with one line and exit code 1", () =>
    Effect.forEach(cases, ([args, message]) => expectOneLineError(target, args, message), {
      concurrency: 3,
      discard: true
    }).pipe(
      Effect.ensuring(Effect.sync(() => removeSqliteFile(file))),
      Effect.provide(NodeContext.layer)
    ), 90_000)

  it.live("explains usage errors with help text and exit code 2", () =>
    Effect.gen(function*() {
      const usage = yield* fails(target, "jobs", "frobnicate")
      expect(usage.exitCode).toBe(2)
      expect(usage.stderr).toMatch(/Invalid subcommand/)
    }).pipe(Effect.provide(NodeContext.layer)), 30_000)
})
