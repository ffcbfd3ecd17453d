/**
 * The dashboard end to end, in headless Chromium (Debian's, driven by playwright-core): sign in
 * with the token, see a failed job, open it, retry it.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { chromium } from "playwright-core"
import { JobStore, Settlement } from "conveyor"
import { AdminServer } from "conveyor/admin"
import { insertOf } from "./conformance/jobStoreSuite.js"

const chromiumPath = "/usr/bin/chromium"
const token = Redacted.make("dashboard-test-token-0123456789")

const ServerLive = AdminServer.layerHttp({ token }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
  Layer.provideMerge(JobStore.layerMemory)
)

/** A fresh browser profile in a temporary directory, removed afterwards. */
const browser = Effect.acquireRelease(
  Effect.tryPromise(async () => {
    const profile = mkdtempSync(Path.join(Os.tmpdir(), "conveyor-chromium-"))
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
    return { context, profile }
  }),
  ({ context, profile }) =>
    Effect.promise(() => context.close()).pipe(
      Effect.ensuring(Effect.sync(() => rmSync(profile, { recursive: true, force: true })))
    )
)

const failedJob = Effect.gen(function*() {
  const store = yield* JobStore
  const [inserted] = yield* store.insert([
    insertOf("billing", { name: "charge_card", payload: JSON.stringify({ invoice: "inv_42" }), maxAttempts: 1, runAt: 0 })
  ])
  const { jobs } = yield* store.claim({ workerId: "w", queues: [{ queue: "billing", limit: 1 }], leaseDuration: Duration.seconds(30) })
  const job = jobs[0]!
  yield* store.settle([Settlement.Discard({
    id: job.id,
    token: job.leaseToken,
    error: { attempt: 1, at: job.attemptedAt!, kind: "failure", message: "card declined" }
  })])
  return inserted!.id
})

describe("dashboard", () => {
  layer(ServerLive, { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.scoped("shows a failed job and retries it", () =>
      Effect.gen(function*() {
        const server = yield* HttpServer.HttpServer
        const address = server.address as HttpServer.TcpAddress
        const id = yield* failedJob
        const { context } = yield* browser
        const page = yield* Effect.promise(() => context.newPage())
        const run = <A>(f: () => Promise<A>) => Effect.promise(f)

        yield* run(() => page.goto(`http://127.0.0.1:${address.port}/`))
        // Without the token the page asks for it.
        yield* run(() => page.locator("#token-form").waitFor({ state: "visible" }))
        yield* run(() => page.fill("#token", Redacted.value(token)))
        yield* run(() => page.click("#token-form button[type=submit]"))

        const row = page.locator(`tr[data-job-id="${id}"]`)
        yield* run(() => row.waitFor({ state: "visible" }))
        expect(yield* run(() => row.getAttribute("data-state"))).toBe("discarded")
        expect(yield* run(() => row.textContent())).toContain("card declined")
        expect(yield* run(() => page.locator("#queue-rows").textContent())).toContain("billing")

        // The detail shows payload and errors.
        yield* run(() => row.locator("td").first().click())
        yield* run(() => page.locator("#detail").waitFor({ state: "visible" }))
        expect(yield* run(() => page.locator("#detail-payload").textContent())).toContain("inv_42")
        expect(yield* run(() => page.locator("#detail-errors").textContent())).toContain("card declined")

        yield* run(() => row.locator("button[data-action=retry]").click())
        yield* run(() => page.locator(`tr[data-job-id="${id}"][data-state="available"]`).waitFor({ state: "visible" }))
        const store = yield* JobStore
        const job = Option.getOrThrow(yield* store.get(id))
        expect(job.state).toBe("available")
        expect(yield* run(() => page.locator("#message").textContent())).toContain(`job ${id} queued again`)
      }), 60_000)
  })
})
