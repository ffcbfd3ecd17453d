import { HttpClient, HttpClientRequest } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it, layer } from "@effect/vitest"
import { DateTime, Duration, Effect, Layer, Logger, Redacted, Schema } from "effect"
import { Job, JobStore, Settlement, StoreError } from "conveyor"
import { AdminApi, AdminServer } from "conveyor/admin"
import { insertOf } from "./conformance/jobStoreSuite.js"

const token = Redacted.make("test-token-0123456789abcdef")

const SendEmail = Job.make({
  name: "send_email",
  queue: "mail",
  payload: Schema.Struct({ to: Schema.String })
})

const serverWith = (options: Parameters<typeof AdminServer.layerHttp>[0]) =>
  AdminServer.layerHttp(options).pipe(
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(JobStore.layerMemory)
  )

/** A job that failed for good: inserted, claimed, discarded. */
const failedJob = (queue: string) =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const [inserted] = yield* store.insert([
      insertOf(queue, { name: "send_email", payload: JSON.stringify({ to: "ada@example.com" }), maxAttempts: 1, runAt: 0 })
    ])
    const { jobs } = yield* store.claim({ workerId: "w", queues: [{ queue, limit: 1 }], leaseDuration: Duration.seconds(30) })
    const job = jobs[0]!
    yield* store.settle([Settlement.Discard({
      id: job.id,
      token: job.leaseToken,
      error: { attempt: 1, at: job.attemptedAt!, kind: "failure", message: "mailbox unavailable" }
    })])
    return inserted!.id
  })

const rawPost = (path: string, headers: Record<string, string>, body?: unknown) =>
  Effect.flatMap(HttpClient.HttpClient, (client) =>
    client.execute(
      HttpClientRequest.post(path).pipe(
        HttpClientRequest.setHeaders(headers),
        body === undefined ? (r) => r : HttpClientRequest.bodyUnsafeJson(body)
      )
    ))

describe("admin API with a token", () => {
  const schedules = [{ name: "nightly-mail", cron: "0 3 * * *", timeZone: "Europe/Paris", job: SendEmail }]
  layer(serverWith({ token, jobs: [SendEmail], maxBodyBytes: 4096, schedules }), { excludeTestServices: true })((it) => {
    it.effect("lists cron schedules with their last and next runs", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client({ token })
        const before = yield* api.cron.list()
        expect(before).toEqual([expect.objectContaining({ schedule: "nightly-mail", cron: "0 3 * * *", job: "send_email", lastTick: null })])
        const next = DateTime.toDateUtc(before[0]!.nextRun!)
        // 03:00 in Paris is 01:00 or 02:00 UTC.
        expect([1, 2]).toContain(next.getUTCHours())
        const store = yield* JobStore
        const insert = {
          name: "send_email", queue: "mail", payload: "{}", priority: 0, maxAttempts: 1, runAt: 0, trigger: "cron" as const,
          tenantId: null, metadata: null, uniqueKey: null, traceContext: null
        }
        yield* store.enqueueCronTick({ schedule: "nightly-mail", tick: 1_700_000_000_000, job: insert })
        yield* store.enqueueCronTick({ schedule: "retired-schedule", tick: 1_600_000_000_000, job: insert })
        const after = yield* api.cron.list()
        expect(after.map((c) => c.schedule)).toEqual(["nightly-mail", "retired-schedule"])
        expect(DateTime.toEpochMillis(after[0]!.lastTick!)).toBe(1_700_000_000_000)
        expect(after[1]).toMatchObject({ cron: null, job: null, nextRun: null })
      }))



    it.effect("answers health, readiness, metrics and the OpenAPI document without a token", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client()
        expect(yield* api.health.healthz()).toEqual({ status: "ok" })
        expect(yield* api.health.readyz()).toMatchObject({ store: "ok", worker: null })
        // Effect's metric registry as Prometheus text; the job metrics are there once jobs ran.
        expect(yield* api.health.metrics()).toMatch(/^# (HELP|TYPE) /m)
        const openapi = yield* HttpClient.get("/openapi.json").pipe(Effect.flatMap((r) => r.json))
        const paths = Object.keys((openapi as { paths: Record<string, unknown> }).paths)
        expect(paths).toEqual(expect.arrayContaining(["/api/jobs", "/api/jobs/{id}/retry", "/api/queues/{queue}/pause", "/healthz"]))
        expect(paths).not.toContain("/")
      }))

    it.effect("refuses every /api route without the right token", () =>
      Effect.gen(function*() {
        const anonymous = yield* AdminApi.client()
        const wrong = yield* AdminApi.client({ token: "not-the-token-at-all" })
        const attempts = [
          Effect.flip(anonymous.jobs.list({ urlParams: {} })),
          Effect.flip(wrong.queues.list()),
          Effect.flip(anonymous.stats.get())
        ]
        for (const attempt of attempts) expect((yield* attempt)._tag).toBe("Unauthorized")
        const response = yield* rawPost("/api/queues/mail/pause", {})
        expect(response.status).toBe(401)
      }))

    it.effect("lists, shows, retries and cancels jobs", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client({ token })
        const id = yield* failedJob("api-retry")
        const page = yield* api.jobs.list({ urlParams: { queue: "api-retry", state: "discarded" } })
        expect(page.jobs.map((job) => job.id)).toEqual([id])
        expect(page.hasMore).toBe(false)
        const shown = yield* api.jobs.get({ path: { id } })
        expect(shown).toMatchObject({ state: "discarded", payload: { to: "ada@example.com" }, payloadHidden: false })
        expect(shown.errors[0]).toMatchObject({ attempt: 1, kind: "failure", message: "mailbox unavailable" })
        expect((yield* api.jobs.retry({ path: { id } })).state).toBe("available")
        expect((yield* api.jobs.cancel({ path: { id } })).state).toBe("cancelled")
        const missing = yield* Effect.flip(api.jobs.get({ path: { id: "98765" } }))
        expect(missing._tag).toBe("JobNotFound")
      }))

    it.effect("pages through jobs", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client({ token })
        const ids = [yield* failedJob("api-paging"), yield* failedJob("api-paging"), yield* failedJob("api-paging")]
        const first = yield* api.jobs.list({ urlParams: { queue: "api-paging", limit: 2 } })
        expect(first.jobs.map((job) => job.id)).toEqual([ids[2], ids[1]])
        expect(first.hasMore).toBe(true)
        const second = yield* api.jobs.list({ urlParams: { queue: "api-paging", limit: 2, offset: 2 } })
        expect(second.jobs.map((job) => job.id)).toEqual([ids[0]])
        expect(second.hasMore).toBe(false)
      }))

    it.effect("enqueues known jobs with validated payloads", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client({ token })
        const created = yield* api.jobs.enqueue({ payload: { name: "send_email", payload: { to: "alan@example.com" } } })
        expect(created.inserted).toBe(true)
        expect(yield* api.jobs.get({ path: { id: created.id } })).toMatchObject({ queue: "mail", trigger: "manual", state: "available" })
        expect((yield* Effect.flip(api.jobs.enqueue({ payload: { name: "nope", payload: {} } })))._tag).toBe("UnknownJob")
        const invalid = yield* Effect.flip(api.jobs.enqueue({ payload: { name: "send_email", payload: { to: 42 } } }))
        expect(invalid._tag).toBe("InvalidPayload")
      }))

    it.effect("pauses and resumes queues, and counts them by state", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client({ token })
        yield* failedJob("api-queues")
        expect(yield* api.queues.pause({ path: { queue: "api-queues" } })).toMatchObject({ queue: "api-queues", paused: true })
        const listed = (yield* api.queues.list()).find((q) => q.queue === "api-queues")
        expect(listed).toMatchObject({ paused: true, counts: { discarded: 1, available: 0 } })
        expect((yield* api.queues.resume({ path: { queue: "api-queues" } })).paused).toBe(false)
        expect(JSON.stringify(yield* JobStore.pipe(Effect.flatMap((s) => s.pausedQueues)))).not.toContain("api-queues")
      }))

    it.effect("reports throughput and failure rate over the last hour", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client({ token })
        const before = yield* api.stats.get()
        yield* failedJob("api-stats")
        const after = yield* api.stats.get()
        expect(after.throughput.length).toBe(60)
        expect(after.discarded - before.discarded).toBe(1)
        expect(after.failureRate).not.toBeNull()
        expect(after.totals.discarded).toBeGreaterThanOrEqual(1)
      }))

    it.effect("rejects cross-site actions by Sec-Fetch-Site or Origin", () =>
      Effect.gen(function*() {
        const auth = { authorization: `Bearer ${Redacted.value(token)}` }
        const crossSite = yield* rawPost("/api/queues/mail/pause", { ...auth, "sec-fetch-site": "cross-site" })
        expect(crossSite.status).toBe(403)
        const sameSite = yield* rawPost("/api/queues/mail/pause", { ...auth, "sec-fetch-site": "same-site" })
        expect(sameSite.status).toBe(403)
        const foreignOrigin = yield* rawPost("/api/queues/mail/pause", { ...auth, origin: "https://evil.example" })
        expect(foreignOrigin.status).toBe(403)
        const typed = yield* AdminApi.client({ token }).pipe(
          Effect.provideServiceEffect(
            HttpClient.HttpClient,
            Effect.map(HttpClient.HttpClient, HttpClient.mapRequest(HttpClientRequest.setHeader("sec-fetch-site", "cross-site")))
          )
        )
        expect((yield* Effect.flip(typed.jobs.retry({ path: { id: "1" } })))._tag).toBe("Forbidden")
        const sameOrigin = yield* rawPost("/api/queues/mail/resume", { ...auth, "sec-fetch-site": "same-origin" })
        expect(sameOrigin.status).toBe(200)
      }))

    it.effect("refuses an oversized body before reading it", () =>
      Effect.gen(function*() {
        const auth = { authorization: `Bearer ${Redacted.value(token)}` }
        const response = yield* rawPost("/api/jobs", auth, { name: "send_email", payload: { to: "x".repeat(10_000) } })
        expect(response.status).toBe(413)
        const jobs = yield* JobStore.pipe(Effect.flatMap((s) => s.list({ name: "send_email", queue: "mail" })))
        expect(jobs.some((job) => job.payload.length > 5000)).toBe(false)
      }))

    it.effect("validates queue and job names and list filters", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client({ token })
        const pause = yield* Effect.flip(api.queues.pause({ path: { queue: "no spaces!" } }))
        expect(pause._tag).toBe("ParseError") // the typed client refuses to send it at all
        const auth = { authorization: `Bearer ${Redacted.value(token)}` }
        expect((yield* rawPost("/api/queues/no%20spaces!/pause", auth)).status).toBe(400)
        expect((yield* rawPost("/api/queues/${x}/pause", auth)).status).toBe(400)
        expect((yield* rawPost("/api/jobs", auth, { name: "../etc", payload: {} })).status).toBe(400)
        const list = (query: string) =>
          HttpClient.HttpClient.pipe(
            Effect.flatMap((client) => client.execute(HttpClientRequest.get(`/api/jobs?${query}`).pipe(HttpClientRequest.setHeaders(auth)))),
            Effect.map((r) => r.status)
          )
        expect(yield* list("queue=bad%20queue")).toBe(400)
        expect(yield* list("state=exploded")).toBe(400)
        expect(yield* list("limit=100000")).toBe(400)
        expect(yield* list("queue=mail&limit=10")).toBe(200)
      }))
  })
})

describe("admin API without a token", () => {
  layer(serverWith({ hidePayloads: true }), { excludeTestServices: true })((it) => {
    it.effect("serves loopback requests without a token and hides payloads when configured", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client()
        const id = yield* failedJob("hidden")
        const job = yield* api.jobs.get({ path: { id } })
        expect(job).toMatchObject({ payload: null, payloadHidden: true, result: null })
      }))

    it.effect("refuses requests addressed to another host name (DNS rebinding)", () =>
      Effect.gen(function*() {
        const client = yield* HttpClient.HttpClient
        const response = yield* client.execute(HttpClientRequest.get("/api/queues").pipe(HttpClientRequest.setHeader("host", "evil.example")))
        expect(response.status).toBe(421)
        const page = yield* client.execute(HttpClientRequest.get("/"))
        expect(page.status).toBe(200)
        expect(page.headers["content-security-policy"]).toContain("default-src 'none'")
        expect(yield* page.text).toContain("<title>Conveyor</title>")
      }))
  })
})

/** The memory store, except that reads fail as if the database were down. */
const UnreachableStore = Layer.effect(
  JobStore,
  Effect.map(JobStore, (store) => {
    const down = (op: string) => Effect.fail(new StoreError({ op, cause: new Error("connection refused") }))
    return { ...store, pausedQueues: down("pausedQueues"), counts: down("counts"), list: () => down("list") }
  })
).pipe(Layer.provide(JobStore.layerMemory))

describe("admin API over an unreachable store", () => {
  layer(
    AdminServer.layerHttp({ token }).pipe(Layer.provideMerge(NodeHttpServer.layerTest), Layer.provide(UnreachableStore)),
    { excludeTestServices: true }
  )((it) => {
    it.effect("is not ready, and answers 503 without the store's details", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client({ token })
        expect(yield* Effect.flip(api.health.readyz())).toMatchObject({ _tag: "NotReady", store: "unreachable" })
        const error = yield* Effect.flip(api.jobs.list({ urlParams: {} }))
        expect(error).toMatchObject({ _tag: "StoreUnavailable" })
        expect(JSON.stringify(error)).not.toContain("connection refused")
        expect(yield* api.health.healthz()).toEqual({ status: "ok" })
      }))
  })
})

describe("admin API with its own metrics source", () => {
  layer(serverWith({ token, metrics: Effect.succeed("custom_jobs_total 7\n") }), { excludeTestServices: true })((it) => {
    it.effect("serves that source on /metrics", () =>
      Effect.gen(function*() {
        const api = yield* AdminApi.client()
        expect(yield* api.health.metrics()).toBe("custom_jobs_total 7\n")
      }))
  })
})

describe("admin server options", () => {
  it.live("binds to loopback when no token is configured, and says so", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.make(({ message }) => {
        lines.push([message].flat().join(" "))
      })
      yield* Layer.build(AdminServer.layer({ host: "0.0.0.0", port: 0 }).pipe(Layer.provide(JobStore.layerMemory))).pipe(
        Effect.scoped,
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      const log = lines.join("\n")
      expect(log).toContain("no admin token configured: binding to 127.0.0.1 instead of 0.0.0.0")
      expect(log).toMatch(/admin server listening on http:\/\/127\.0\.0\.1:\d+/)
    }))
})
