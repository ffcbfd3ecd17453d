import { describe, expect, it } from "@effect/vitest"
import { DateTime, Effect, Exit, Schema, TestClock } from "effect"
import { Job, JobClient, JobStore } from "conveyor"
import * as Testing from "conveyor/testing"

const Signup = Job.make({
  name: "signup",
  queue: "accounts",
  priority: 3,
  maxAttempts: 7,
  payload: Schema.Struct({ email: Schema.String.pipe(Schema.pattern(/@/)), at: Schema.DateFromString }),
  uniqueKey: ({ email }) => email
})

describe("JobClient", () => {
  it.effect("encodes the payload with its Schema and stores the job's defaults", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2026, 5, 1))
      const client = yield* JobClient
      const id = yield* client.enqueue(Signup, { email: "ada@example.com", at: new Date(Date.UTC(2026, 0, 2)) }, {
        tenantId: "ws-42",
        metadata: { source: "api" }
      })
      const job = yield* client.get(id)
      expect(job).toMatchObject({
        name: "signup",
        queue: "accounts",
        priority: 3,
        maxAttempts: 7,
        state: "available",
        tenantId: "ws-42",
        metadata: { source: "api" },
        trigger: "queue",
        uniqueKey: "signup:ada@example.com"
      })
      expect(JSON.parse(job.payload)).toEqual({ email: "ada@example.com", at: "2026-01-02T00:00:00.000Z" })
    }).pipe(Effect.provide(Testing.layer)))

  it.effect("fails fast with a typed error on a payload that does not match, storing nothing", () =>
    Effect.gen(function*() {
      const client = yield* JobClient
      const exit = yield* Effect.exit(client.enqueueMany(Signup, [
        { payload: { email: "ok@example.com", at: new Date() } },
        { payload: { email: "not-an-email", at: new Date() } }
      ]))
      expect(exit).toMatchObject(Exit.fail({ _tag: "InvalidPayload", job: "signup" }))
      if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain("not-an-email")
      const store = yield* JobStore
      expect(yield* store.list({ queue: "accounts" })).toEqual([])
    }).pipe(Effect.provide(Testing.layer)))

  it.effect("rejects a payload over the size limit", () =>
    Effect.gen(function*() {
      const Blob = Job.make({ name: "blob", payload: Schema.String })
      const client = yield* JobClient
      const error = yield* Effect.flip(client.enqueue(Blob, "x".repeat(2048)))
      expect(error).toMatchObject({ _tag: "PayloadTooLarge", bytes: 2050, limit: 1024 })
      expect(yield* client.enqueue(Blob, "small")).toBeTypeOf("string")
    }).pipe(Effect.provide(JobClient.layerWith({ maxPayloadBytes: 1024 })), Effect.provide(JobStore.layerMemory)))

  it.effect("rejects invalid queue names with a typed error, and invalid job names at definition", () =>
    Effect.gen(function*() {
      const client = yield* JobClient
      const error = yield* Effect.flip(client.enqueue(Signup, { email: "a@b", at: new Date() }, { queue: "no spaces; drop table" }))
      expect(error).toMatchObject({ _tag: "InvalidName", kind: "queue" })
      expect(() => Job.make({ name: "bad name!", payload: Schema.String })).toThrow(/invalid job name/)
      expect(() => Job.make({ name: "ok", queue: "", payload: Schema.String })).toThrow(/invalid queue name/)
      expect(() => Job.make({ name: "ok", maxAttempts: 0, payload: Schema.String })).toThrow(/maxAttempts/)
    }).pipe(Effect.provide(Testing.layer)))

  it.effect("returns the live job for a repeated unique key, a new one once it is finished", () =>
    Effect.gen(function*() {
      const client = yield* JobClient
      const payload = { email: "dup@example.com", at: new Date(0) }
      const first = yield* client.enqueue(Signup, payload)
      const second = yield* client.enqueue(Signup, payload)
      expect(second).toBe(first)
      const [batch] = yield* client.enqueueMany(Signup, [{ payload }])
      expect(batch).toEqual({ id: first, inserted: false })
      const explicit = yield* client.enqueue(Signup, payload, { uniqueKey: "custom" })
      expect(explicit).not.toBe(first)
      yield* client.cancel(first)
      const third = yield* client.enqueue(Signup, payload)
      expect(third).not.toBe(first)
    }).pipe(Effect.provide(Testing.layer)))

  it.effect("schedules with a delay or a run-at time", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2026, 5, 1))
      const client = yield* JobClient
      const delayed = yield* client.get(yield* client.enqueue(Signup, { email: "a@b", at: new Date(0) }, { delay: "5 minutes", uniqueKey: "1" }))
      expect(delayed).toMatchObject({ state: "scheduled", runAt: Date.UTC(2026, 5, 1, 0, 5) })
      const at = DateTime.unsafeMake(Date.UTC(2026, 5, 2))
      const dated = yield* client.get(yield* client.enqueue(Signup, { email: "a@b", at: new Date(0) }, { runAt: at, uniqueKey: "2" }))
      expect(dated.runAt).toBe(Date.UTC(2026, 5, 2))
    }).pipe(Effect.provide(Testing.layer)))

  it.effect("reports unknown ids with JobNotFound", () =>
    Effect.gen(function*() {
      const client = yield* JobClient
      expect(yield* Effect.flip(client.get("12345"))).toMatchObject({ _tag: "JobNotFound", id: "12345" })
      expect(yield* Effect.flip(client.cancel("12345"))).toMatchObject({ _tag: "JobNotFound" })
      expect(yield* Effect.flip(client.retry("12345"))).toMatchObject({ _tag: "JobNotFound" })
    }).pipe(Effect.provide(Testing.layer)))
})
