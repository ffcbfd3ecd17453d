/**
 * Worker processes for the multi-process tests: spawn a fixture with `tsx`, collect its stdout
 * lines, stop it with SIGTERM, and SIGKILL whatever a failed test left running.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { afterEach } from "@effect/vitest"
import { Effect } from "effect"
import { pgUrl } from "./databases.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const children: Array<ChildProcess> = []

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL")
})

export interface Spawned {
  readonly child: ChildProcess
  /** Every complete line the process has printed so far. */
  readonly lines: Array<string>
  readonly exited: Promise<number | null>
}

/** Start `test/fixtures/<fixture>` in its own Node process, with `env` over the test's. */
export const spawnFixture = (fixture: string, env: Record<string, string>): Spawned => {
  const child = spawn(process.execPath, ["--import", "tsx", `test/fixtures/${fixture}`], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: pgUrl, ...env },
    stdio: ["ignore", "pipe", "inherit"]
  })
  children.push(child)
  const lines: Array<string> = []
  let pending = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    const split = (pending + chunk.toString("utf8")).split("\n")
    pending = split.pop()!
    lines.push(...split)
  })
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, lines, exited }
}

/** SIGTERM every process still running and wait for all to exit; their exit codes. */
export const stopAll = (workers: ReadonlyArray<Spawned>) =>
  Effect.promise(() => {
    for (const worker of workers) if (worker.child.exitCode === null) worker.child.kill("SIGTERM")
    return Promise.all(workers.map((worker) => worker.exited))
  })

/** For a failed exit-code assertion: the last lines (other than `ran <i>`) of each process that exited non-zero. */
export const exitReport = (workers: ReadonlyArray<Spawned>) =>
  workers
    .filter((worker) => worker.child.exitCode !== 0)
    .map((worker) =>
      `exit ${worker.child.exitCode}:\n${worker.lines.filter((line) => !line.startsWith("ran ")).slice(-20).join("\n")}`
    )
    .join("\n\n")
