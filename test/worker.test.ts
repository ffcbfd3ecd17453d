import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, type Duration, Effect, Exit, Fiber, FiberRef, HashMap, Layer, Option, Ref, Schedule, Schema, Scope, TestClock } from "effect"
import { cancel, Job, JobClient, JobContext, JobStore, type LocalReservation, type LocalWorker, snooze, Worker } from "conveyor"
import * as Testing from "conveyor/testing"
import { finishedJobs, start } from "./helpers.js"
import { insertOf } from "./conformance/jobStoreSuite.js"

class Boom extends Schema.TaggedError<Boom>()("Boom", { reason: Schema.String }) {}

const Task = Job.make({
  name: "task",
  payload: Schema.Struct({ n: Schema.Number }),
  error: Boom,
  maxAttempts: 1,
  timeout: "10 seconds"
})

/** Advance the TestClock in steps until `fiber` is done. */
const driveUntilDone = <A, E>(fiber: Fiber.Fiber<A, E>, step: Duration.DurationInput = "1 second", maxSteps = 600) =>
  Effect.gen(function*() {
    for (let i = 0; i < maxSteps; i++) {
      const done = yield* Fiber.poll(fiber)
      if (Option.isSome(done)) return yield* Fiber.join(fiber)
      yield* TestClock.adjust(step)
    }
    return yield* Effect.dieMessage("fiber did not finish")
  })

describe("Worker", () => {
  it.scoped("follows the pattern's lifecycle: process scope, subscription, job scope, context, handler, release", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      class Database extends Context.Tag("Database")<Database, { readonly name: string }>() {}
      class WorkspaceClient extends Context.Tag("WorkspaceClient")<WorkspaceClient, { readonly jobId: string }>() {}
      const DatabaseLive = Layer.scoped(
        Database,
        Effect.acquireRelease(Effect.sync(() => (log.push("1 process scope built"), { name: "db" })), () =>
          Effect.sync(() => log.push("process scope released")))
      )
      const WorkspaceClientLive = Layer.scoped(
        WorkspaceClient,
        Effect.gen(function*() {
          const ctx = yield* JobContext
          log.push(`3 job scope opened for ${ctx.name}`)
          log.push(`4 context populated: attempt ${ctx.attempt}, trigger ${ctx.trigger}`)
          yield* Effect.addFinalizer(() => Effect.sync(() => log.push("6 job scope released")))
          return { jobId: ctx.id }
        })
      )
      const handler = Task.handler(() =>
        Effect.gen(function*() {
          const db = yield* Database
          const client = yield* WorkspaceClient
          const ctx = yield* JobContext
          log.push(`5 handler ran with ${db.name} and the client of job ${client.jobId === ctx.id ? "itself" : "another"}`)
        })
      )
      const processScope = yield* Scope.make()
      const workerLayer = Worker.layer({ handlers: [handler], jobLayer: WorkspaceClientLive }).pipe(
        Layer.provide(DatabaseLive)
      )
      const worker = yield* Layer.buildWithScope(workerLayer, processScope).pipe(Effect.map(Context.get(Worker.Worker)))
      log.push("2 worker subscribed")
      const done = yield* finishedJobs(worker, 1)
      yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Task, { n: 1 })))
      yield* done
      yield* Scope.close(processScope, Exit.void)
      expect(log).toEqual([
        "1 process scope built",
        "2 worker subscribed",
        "3 job scope opened for task",
        "4 context populated: attempt 1, trigger queue",
        "5 handler ran with db and the client of job itself",
        "6 job scope released",
        "process scope released"
      ])
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("releases job-scoped resources on success, failure, defect, timeout and cancellation", () =>
    Effect.gen(function*() {
      const released = new Map<number, Array<string>>()
      class Resource extends Context.Tag("Resource")<Resource, { readonly n: number }>() {}
      const ResourceLive = Layer.scoped(
        Resource,
        Effect.gen(function*() {
          const ctx = yield* JobContext
          const { n } = JSON.parse(JSON.stringify(ctx.metadata)) as { n: number }
          yield* Effect.addFinalizer(() => Effect.sync(() => released.set(n, [...(released.get(n) ?? []), "layer"])))
          return { n }
        })
      )
      const started = yield* Deferred.make<void>()
      const handler = Task.handler(({ n }) =>
        Effect.gen(function*() {
          yield* Effect.addFinalizer(() => Effect.sync(() => released.set(n, [...(released.get(n) ?? []), "handler"])))
          const resource = yield* Resource
          expect(resource.n).toBe(n)
          switch (n) {
            case 1:
              return
            case 2:
              return yield* new Boom({ reason: "typed" })
            case 3:
              return yield* Effect.die("defect")
            case 4:
              return yield* Effect.never
            default:
              yield* Deferred.succeed(started, undefined)
              return yield* Effect.never
          }
        })
      )
      const worker = yield* start(Worker.layer({ handlers: [handler], jobLayer: ResourceLive }))
      const done = yield* finishedJobs(worker, 5)
      const client = yield* JobClient
      const ids = yield* Effect.forEach([1, 2, 3, 4, 5], (n) => client.enqueue(Task, { n }, { metadata: { n } }))
      yield* Deferred.await(started)
      yield* client.cancel(ids[4]!)
      const waiting = yield* Effect.fork(done)
      const events = yield* driveUntilDone(waiting)
      const outcome = new Map(events.map((event) => [event.job.id, event.outcome]))
      expect(ids.map((id) => outcome.get(id))).toEqual(["Complete", "Discard", "Discard", "Discard", "Cancel"])
      for (const n of [1, 2, 3, 4, 5]) expect(released.get(n)?.sort()).toEqual(["handler", "layer"])
      const states = yield* Effect.forEach(ids, (id) => Effect.map(Testing.getJob(id), (job) => job.state))
      expect(states).toEqual(["completed", "discarded", "discarded", "discarded", "cancelled"])
      const timedOut = yield* Testing.getJob(ids[3]!)
      expect(timedOut.errors[0]).toMatchObject({ kind: "timeout" })
      expect(timedOut.errors[0]!.message).toContain("timed out after 10s")
      const failed = yield* Testing.getJob(ids[1]!)
      expect(failed.errors[0]).toMatchObject({ kind: "failure", error: { _tag: "Boom", reason: "typed" } })
      const defect = yield* Testing.getJob(ids[2]!)
      expect(defect.errors[0]).toMatchObject({ kind: "defect" })
      expect(defect.errors[0]!.message).toContain("defect")
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("closes a job's scope with the job's annotations in place; a failing finalizer fails the attempt, not the runner", () =>
    Effect.gen(function*() {
      const Untimed = Job.make({ name: "untimed", payload: Schema.Struct({ n: Schema.Number }), maxAttempts: 1 })
      const seen: Array<unknown> = []
      const handler = Untimed.handler(({ n }) =>
        Effect.addFinalizer(() =>
          n === 1
            ? Effect.die("finalizer broke")
            : Effect.flatMap(FiberRef.get(FiberRef.currentLogAnnotations), (annotations) =>
              Effect.sync(() => seen.push(Option.getOrUndefined(HashMap.get(annotations, "jobId")))))
        ))
      const worker = yield* start(Worker.layer({ handlers: [handler], concurrency: 1 }))
      const done = yield* finishedJobs(worker, 3)
      const client = yield* JobClient
      const ids = yield* Effect.forEach([1, 2, 3], (n) => client.enqueue(Untimed, { n }))
      const finished = yield* done
      expect(finished.map((event) => [event.job.id, event.outcome])).toEqual([[ids[0], "Discard"], [ids[1], "Complete"], [ids[2], "Complete"]])
      expect(seen).toEqual([ids[1], ids[2]])
      const store = yield* JobStore
      const broken = Option.getOrThrow(yield* store.get(ids[0]!))
      expect(broken.errors[0]).toMatchObject({ kind: "defect" })
      expect(broken.errors[0]!.message).toContain("finalizer broke")
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("never shares a job-scoped instance between jobs, even concurrent ones", () =>
    Effect.gen(function*() {
      let built = 0
      const releasedInstances: Array<number> = []
      class Counter extends Context.Tag("Counter")<Counter, { readonly instance: number; count: number }>() {}
      const CounterLive = Layer.scoped(
        Counter,
        Effect.acquireRelease(Effect.sync(() => ({ instance: ++built, count: 0 })), (counter) =>
          Effect.sync(() => releasedInstances.push(counter.instance)))
      )
      const seen: Array<{ instance: number; count: number }> = []
      const handler = Task.handler(() =>
        Effect.gen(function*() {
          const counter = yield* Counter
          counter.count += 1
          yield* Effect.sleep("1 second")
          seen.push({ instance: counter.instance, count: counter.count })
        })
      )
      const worker = yield* start(Worker.layer({ handlers: [handler], jobLayer: CounterLive, concurrency: 5 }))
      const done = yield* finishedJobs(worker, 20)
      yield* JobClient.pipe(
        Effect.flatMap((client) => client.enqueueMany(Task, Array.from({ length: 20 }, (_, n) => ({ payload: { n } }))))
      )
      yield* driveUntilDone(yield* Effect.fork(done))
      expect(built).toBe(20)
      expect(new Set(seen.map((s) => s.instance)).size).toBe(20)
      expect(seen.every((s) => s.count === 1)).toBe(true)
      expect(releasedInstances.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("never runs more jobs at once than the process and queue limits allow", () =>
    Effect.gen(function*() {
      const A = Job.make({ name: "in_a", queue: "a", payload: Schema.Number })
      const B = Job.make({ name: "in_b", queue: "b", payload: Schema.Number })
      const running = { total: 0, a: 0, b: 0 }
      const peak = { total: 0, a: 0, b: 0 }
      const track = (queue: "a" | "b") =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            running.total++
            running[queue]++
            peak.total = Math.max(peak.total, running.total)
            peak[queue] = Math.max(peak[queue], running[queue])
          }),
          () => Effect.sleep("1 second"),
          () =>
            Effect.sync(() => {
              running.total--
              running[queue]--
            })
        )
      const worker = yield* start(Worker.layer({
        handlers: [A.handler(() => track("a")), B.handler(() => track("b"))],
        concurrency: 3,
        queues: { a: 2, b: 2 }
      }))
      const done = yield* finishedJobs(worker, 40)
      const client = yield* JobClient
      yield* client.enqueueMany(A, Array.from({ length: 20 }, (_, n) => ({ payload: n })))
      yield* client.enqueueMany(B, Array.from({ length: 20 }, (_, n) => ({ payload: n })))
      yield* driveUntilDone(yield* Effect.fork(done), "100 millis")
      expect(peak).toEqual({ total: 3, a: 2, b: 2 })
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("retries a failing job on its backoff schedule, then discards it", () =>
    Effect.gen(function*() {
      const Flaky = Job.make({
        name: "flaky",
        payload: Schema.Struct({}),
        error: Boom,
        maxAttempts: 3,
        backoff: Schedule.spaced("10 seconds")
      })
      const attempts: Array<{ attempt: number; at: number }> = []
      const handler = Flaky.handler(() =>
        Effect.gen(function*() {
          const ctx = yield* JobContext
          attempts.push({ attempt: ctx.attempt, at: yield* TestClock.currentTimeMillis })
          return yield* new Boom({ reason: `attempt ${ctx.attempt}` })
        })
      )
      const worker = yield* start(Worker.layer({ handlers: [handler] }))
      const done = yield* finishedJobs(worker, 3)
      const id = yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Flaky, {})))
      const waiting = yield* Effect.fork(done)
      yield* TestClock.adjust("9 seconds")
      expect(attempts.map((a) => a.attempt)).toEqual([1])
      expect((yield* Testing.getJob(id)).state).toBe("retryable")
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("10 seconds")
      const events = yield* Fiber.join(waiting)
      expect(events.map((e) => e.outcome)).toEqual(["Retry", "Retry", "Discard"])
      expect(attempts.map((a) => a.at - attempts[0]!.at)).toEqual([0, 10_000, 20_000])
      const job = yield* Testing.getJob(id)
      expect(job.state).toBe("discarded")
      expect(job.errors.map((e) => e.error)).toEqual([1, 2, 3].map((n) => ({ _tag: "Boom", reason: `attempt ${n}` })))
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("snoozes without spending an attempt, and cancels for good", () =>
    Effect.gen(function*() {
      const Sleepy = Job.make({ name: "sleepy", payload: Schema.Struct({ cancelIt: Schema.Boolean }), maxAttempts: 1 })
      const runs: Array<number> = []
      const handler = Sleepy.handler(({ cancelIt }) =>
        Effect.gen(function*() {
          const ctx = yield* JobContext
          runs.push(ctx.attempt)
          if (cancelIt) return yield* cancel("no longer wanted")
          if (runs.length === 1) return yield* snooze("1 minute")
        })
      )
      const worker = yield* start(Worker.layer({ handlers: [handler] }))
      const client = yield* JobClient
      const first = yield* finishedJobs(worker, 1)
      const id = yield* client.enqueue(Sleepy, { cancelIt: false })
      expect((yield* first)[0]!.outcome).toBe("Snooze")
      expect(yield* Testing.getJob(id)).toMatchObject({ state: "scheduled", attempt: 0 })
      const second = yield* finishedJobs(worker, 1)
      yield* TestClock.adjust("1 minute")
      expect((yield* second)[0]!.outcome).toBe("Complete")
      expect(runs).toEqual([1, 1])
      expect(yield* Testing.getJob(id)).toMatchObject({ state: "completed", attempt: 1 })

      const third = yield* finishedJobs(worker, 1)
      const cancelled = yield* client.enqueue(Sleepy, { cancelIt: true })
      expect((yield* third)[0]!.outcome).toBe("Cancel")
      expect(yield* Testing.getJob(cancelled)).toMatchObject({ state: "cancelled" })
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("discards a job whose payload no longer decodes, at once and with a clear message", () =>
    Effect.gen(function*() {
      const Strict = Job.make({ name: "strict", payload: Schema.Struct({ email: Schema.String }), maxAttempts: 5 })
      let ran = false
      const worker = yield* start(Worker.layer({ handlers: [Strict.handler(() => Effect.sync(() => (ran = true)))] }))
      const done = yield* finishedJobs(worker, 1)
      const store = yield* JobStore
      const [inserted] = yield* store.insert([
        insertOf("default", { name: "strict", payload: JSON.stringify({ mail: "old field name" }), maxAttempts: 5, runAt: 0 })
      ])
      expect((yield* done)[0]!.outcome).toBe("Discard")
      expect(ran).toBe(false)
      const job = yield* Testing.getJob(inserted!.id)
      expect(job).toMatchObject({ state: "discarded", attempt: 1 })
      expect(job.errors[0]!.kind).toBe("invalid-payload")
      expect(job.errors[0]!.message).toContain("email")
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("retries a job no handler on this worker knows, for a worker that does", () =>
    Effect.gen(function*() {
      const Other = Job.make({ name: "other", payload: Schema.Struct({}) })
      const worker = yield* start(Worker.layer({ handlers: [Task.handler(() => Effect.void)] }))
      const done = yield* finishedJobs(worker, 1)
      const id = yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Other, {})))
      expect((yield* done)[0]!.outcome).toBe("Retry")
      const job = yield* Testing.getJob(id)
      expect(job.state).toBe("retryable")
      expect(job.errors[0]!.kind).toBe("unknown-job")
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("runs due jobs by priority, and delayed jobs at their time", () =>
    Effect.gen(function*() {
      const Ordered = Job.make({ name: "ordered", payload: Schema.String })
      const order: Array<string> = []
      const client = yield* JobClient
      yield* client.enqueue(Ordered, "later", { delay: "1 minute", priority: -10 })
      yield* client.enqueue(Ordered, "low", { priority: 5 })
      yield* client.enqueue(Ordered, "high", { priority: -1 })
      yield* client.enqueue(Ordered, "normal")
      const threeRan = yield* Deferred.make<void>()
      const worker = yield* start(Worker.layer({
        handlers: [Ordered.handler((label) =>
          Effect.suspend(() => {
            order.push(label)
            return order.length === 3 ? Deferred.succeed(threeRan, undefined) : Effect.void
          })
        )],
        concurrency: 1,
        prefetch: 0
      }))
      yield* Deferred.await(threeRan)
      expect(order).toEqual(["high", "normal", "low"])
      const last = yield* finishedJobs(worker, 1)
      yield* TestClock.adjust("1 minute")
      yield* last
      expect(order).toEqual(["high", "normal", "low", "later"])
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("runs jobs one after another on a runner without leaking fiber state, and replaces a cancelled job's runner", () =>
    Effect.gen(function*() {
      const Step = Job.make({ name: "step", payload: Schema.Struct({ n: Schema.Number, block: Schema.Boolean }) })
      const carried = FiberRef.unsafeMake<ReadonlyArray<number>>([])
      const seen: Array<readonly [number, ReadonlyArray<number>]> = []
      const blocked = yield* Deferred.make<void>()
      const worker = yield* start(Worker.layer({
        handlers: [Step.handler(({ block, n }) =>
          Effect.gen(function*() {
            seen.push([n, yield* FiberRef.get(carried)])
            yield* FiberRef.update(carried, (ns) => [...ns, n])
            yield* Effect.annotateLogsScoped({ leaked: n })
            if (block) {
              yield* Deferred.succeed(blocked, undefined)
              return yield* Effect.never
            }
          })
        )],
        concurrency: 1
      }))
      const client = yield* JobClient
      const first = yield* finishedJobs(worker, 3)
      yield* Effect.forEach([1, 2, 3], (n) => client.enqueue(Step, { n, block: false }))
      yield* first
      // Every job started from the runner's own state, whatever the one before it set.
      expect(seen).toEqual([[1, []], [2, []], [3, []]])

      const cancelled = yield* finishedJobs(worker, 1)
      const id = yield* client.enqueue(Step, { n: 4, block: true })
      yield* Deferred.await(blocked)
      yield* client.cancel(id)
      const [event] = yield* cancelled
      expect(event!.outcome).toBe("Cancel")
      // The interrupted runner retired; its replacement runs the next job, from a clean state.
      const after = yield* finishedJobs(worker, 1)
      yield* client.enqueue(Step, { n: 5, block: false })
      const [next] = yield* after
      expect(next!.outcome).toBe("Complete")
      expect(seen.at(-1)).toEqual([5, []])
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("gives every job its own context and log annotations, also after jobs of its kind ran on the runner", () =>
    Effect.gen(function*() {
      const Tagged = Job.make({ name: "tagged", payload: Schema.Struct({ n: Schema.Number }) })
      const seen: Array<{ n: number; id: string; annotated: unknown; tenant: unknown; queue: unknown; context: unknown }> = []
      const worker = yield* start(Worker.layer({
        handlers: [Tagged.handler(({ n }) =>
          Effect.gen(function*() {
            const ctx = yield* JobContext
            const annotations = yield* Effect.logAnnotations
            seen.push({
              n,
              id: ctx.id,
              annotated: Option.getOrUndefined(HashMap.get(annotations, "jobId")),
              tenant: Option.getOrUndefined(HashMap.get(annotations, "tenantId")),
              queue: Option.getOrUndefined(HashMap.get(annotations, "queue")),
              context: JSON.parse(JSON.stringify(ctx))
            })
          })
        )],
        concurrency: 1,
        queues: { [Tagged.queue]: 1, side: 1 }
      }))
      const client = yield* JobClient
      const done = yield* finishedJobs(worker, 4)
      const ids = [
        yield* client.enqueue(Tagged, { n: 1 }, { tenantId: "acme" }),
        yield* client.enqueue(Tagged, { n: 2 }, { tenantId: "acme" }),
        yield* client.enqueue(Tagged, { n: 3 }, { tenantId: "globex" }),
        yield* client.enqueue(Tagged, { n: 4 })
      ]
      yield* done
      expect(seen.map(({ annotated, id, n, tenant }) => [n, id, annotated, tenant])).toEqual([
        [1, ids[0], ids[0], "acme"],
        [2, ids[1], ids[1], "acme"],
        [3, ids[2], ids[2], "globex"],
        [4, ids[3], ids[3], undefined]
      ])
      // The context shows its fields, the ones made on first read included.
      expect(seen[2]!.context).toMatchObject({
        id: ids[2],
        name: "tagged",
        attempt: 1,
        trigger: "queue",
        tenantId: { _tag: "Some", value: "globex" }
      })
      expect(seen[3]!.context).toMatchObject({ tenantId: { _tag: "None" } })
      // The same job on another queue, right after: its annotations name that queue.
      const sideDone = yield* finishedJobs(worker, 1)
      const side = yield* client.enqueue(Tagged, { n: 5 }, { queue: "side" })
      yield* sideDone
      expect(seen.map(({ n, queue }) => [n, queue])).toEqual([
        [1, Tagged.queue],
        [2, Tagged.queue],
        [3, Tagged.queue],
        [4, Tagged.queue],
        [5, "side"]
      ])
      expect(seen[4]).toMatchObject({ id: side, annotated: side, tenant: undefined })
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("keeps a long job's lease alive with heartbeats, so it is never rescued", () =>
    Effect.gen(function*() {
      const Long = Job.make({ name: "long", payload: Schema.Struct({}) })
      const worker = yield* start(Worker.layer({
        handlers: [Long.handler(() => Effect.sleep("3 minutes"))],
        leaseDuration: "30 seconds",
        heartbeatInterval: "10 seconds",
        rescueInterval: "5 seconds"
      }))
      const done = yield* finishedJobs(worker, 1)
      const id = yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Long, {})))
      const events = yield* driveUntilDone(yield* Effect.fork(done))
      expect(events[0]!.outcome).toBe("Complete")
      expect(yield* Testing.getJob(id)).toMatchObject({ state: "completed", attempt: 1, errors: [] })
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("prunes finished jobs once their retention has passed", () =>
    Effect.gen(function*() {
      const Short = Job.make({ name: "short", payload: Schema.Struct({}) })
      const worker = yield* start(Worker.layer({
        handlers: [Short.handler(() => Effect.void)],
        retention: { completed: "1 hour" },
        pruneInterval: "1 minute",
        // Fewer wake-ups while the TestClock jumps an hour ahead.
        pollInterval: "5 minutes",
        heartbeatInterval: "5 minutes",
        rescueInterval: "5 minutes"
      }))
      const done = yield* finishedJobs(worker, 1)
      const id = yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Short, {})))
      yield* done
      const store = yield* JobStore
      yield* TestClock.adjust("59 minutes")
      expect(Option.isSome(yield* store.get(id))).toBe(true)
      yield* TestClock.adjust("2 minutes")
      expect(yield* store.get(id)).toEqual(Option.none())
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("asks every queue with room before it waits, so a job never waits for a poll while another queue is empty", () =>
    Effect.gen(function*() {
      // Capacity 2 over two queues: a claim's room reaches one queue only. When the one it
      // reaches is empty, the other is asked next, not after a poll (the TestClock never polls).
      const Tagged = Job.make({ name: "tagged", payload: Schema.Struct({ n: Schema.Number }) })
      const asked: Array<ReadonlyArray<string>> = []
      const countingStore = Layer.effect(
        JobStore,
        Effect.map(JobStore, (store) => ({
          ...store,
          claim: (request) => {
            asked.push(request.queues.map((slot) => slot.queue))
            return store.claim(request)
          }
        }))
      ).pipe(Layer.provide(JobStore.layerMemory))
      yield* Effect.gen(function*() {
        const worker = yield* start(Worker.layer({
          handlers: [Tagged.handler(() => Effect.void)],
          concurrency: 1,
          queues: { [Tagged.queue]: 1, side: 1 }
        }))
        const client = yield* JobClient
        const done = yield* finishedJobs(worker, 6)
        for (let n = 0; n < 6; n++) yield* client.enqueue(Tagged, { n })
        expect(yield* done).toHaveLength(6)
        expect(asked.some((queues) => queues.length === 1 && queues[0] === "side")).toBe(true)
      }).pipe(Effect.provide(JobClient.layer.pipe(Layer.provideMerge(countingStore))))
    }))

  it.scoped("claims a first batch of 256 and doubles while claims come back full, up to the free capacity", () =>
    Effect.gen(function*() {
      const asked: Array<number> = []
      const found: Array<number> = []
      const countingStore = Layer.effect(
        JobStore,
        Effect.map(JobStore, (store) => ({
          ...store,
          claim: (request) => {
            asked.push(request.queues.reduce((sum, slot) => sum + slot.limit, 0))
            return Effect.tap(store.claim(request), (result) => Effect.sync(() => found.push(result.jobs.length)))
          },
          // Every job through a claim: none handed over at enqueue.
          registerLocalWorker: () => Effect.void
        }))
      ).pipe(Layer.provide(JobStore.layerMemory))
      const Noop = Job.make({ name: "noop", payload: Schema.Struct({ i: Schema.Number }) })
      const run = Effect.gen(function*() {
        const client = yield* JobClient
        yield* client.enqueueMany(Noop, Array.from({ length: 3000 }, (_, i) => ({ payload: { i } })))
        const worker = yield* start(Worker.layer({ handlers: [Noop.handler(() => Effect.void)], concurrency: 2, prefetch: 2046 }))
        yield* yield* finishedJobs(worker, 3000)
        const more = yield* finishedJobs(worker, 3)
        yield* client.enqueueMany(Noop, Array.from({ length: 3 }, (_, i) => ({ payload: { i } })))
        yield* more
      })
      yield* run.pipe(Effect.provide(JobClient.layer.pipe(Layer.provideMerge(countingStore))))
      // Capacity is 2,048 (concurrency 2 + prefetch 2,046): 256, 512, 1,024 while full (each
      // leaves at least that much free), never above what is free.
      expect(asked.slice(0, 3)).toEqual([256, 512, 1024])
      expect(found.slice(0, 3)).toEqual([256, 512, 1024])
      expect(Math.max(...asked)).toBeLessThanOrEqual(2048)
      // Once grown, claims stay large after the queue ran dry: the 3 new jobs come in one claim.
      const late = found.lastIndexOf(3)
      expect(late).toBeGreaterThan(2)
      expect(asked[late]).toBeGreaterThan(3)
      // A claim that came back short is not followed by one at once (it would find nothing): the
      // worker waits for a wake-up or its next poll, which the TestClock never reaches here.
      expect(found).not.toContain(0)
      expect(late).toBe(found.length - 1)
    }))

  it.scopedLive("gives the event loop a turn every few milliseconds while its runners have jobs waiting", () =>
    Effect.gen(function*() {
      // Jobs that never leave the microtask queue (no I/O): without turns, nothing waiting on the
      // event loop (a claim's answer, a settlement, a heartbeat) ran until all 2,000 had run.
      const Spin = Job.make({ name: "spin", payload: Schema.Struct({ i: Schema.Number }) })
      const n = 2000
      let ran = 0
      let ranBeforeTurn: number | undefined
      const handler = Spin.handler(() =>
        Effect.sync(() => {
          const until = performance.now() + 0.05
          while (performance.now() < until) {
            // 50 µs of work per job: 100 ms in all
          }
          if (ran++ === 0) setImmediate(() => (ranBeforeTurn = ran))
        })
      )
      const client = yield* JobClient
      yield* client.enqueueMany(Spin, Array.from({ length: n }, (_, i) => ({ payload: { i } })))
      const worker = yield* start(Worker.layer({ handlers: [handler], concurrency: 4, prefetch: n }))
      yield* Effect.flatten(finishedJobs(worker, n))
      expect(ranBeforeTurn).toBeDefined()
      expect(ranBeforeTurn!).toBeLessThan(n / 4)
    }).pipe(Effect.provide(JobClient.layer.pipe(Layer.provideMerge(JobStore.layerMemory)))))

  it.scoped("takes jobs enqueued in its process without a claim while it has room and has claimed all that is due", () =>
    Effect.gen(function*() {
      const Noop = Job.make({ name: "noop", payload: Schema.Struct({ i: Schema.Number }) })
      /** A worker (concurrency 2, prefetch 4 unless given) whose jobs wait for `release`, and the jobs each of its claims found. */
      const scenario = (
        prefilled: number,
        test: (found: ReadonlyArray<number>) => Effect.Effect<void, unknown, JobClient | JobStore | Scope.Scope>
      ) =>
        Effect.gen(function*() {
          const found: Array<number> = []
          const countingStore = Layer.effect(
            JobStore,
            Effect.map(JobStore, (store) => ({
              ...store,
              claim: (request) => Effect.tap(store.claim(request), (result) => Effect.sync(() => found.push(result.jobs.length)))
            }))
          ).pipe(Layer.provide(JobStore.layerMemory))
          yield* Effect.scoped(Effect.gen(function*() {
            const client = yield* JobClient
            yield* client.enqueueMany(Noop, Array.from({ length: prefilled }, (_, i) => ({ payload: { i } })))
            yield* test(found)
          })).pipe(Effect.provide(JobClient.layer.pipe(Layer.provideMerge(countingStore))))
        })
      const startWorker = (found: ReadonlyArray<number>, prefetch = 4) =>
        Effect.gen(function*() {
          const release = yield* Deferred.make<void>()
          const worker = yield* start(
            Worker.layer({ handlers: [Noop.handler(() => Deferred.await(release))], concurrency: 2, prefetch })
          )
          for (let i = 0; i < 100 && found.length === 0; i++) yield* Effect.yieldNow()
          return { worker, release }
        })
      const claimed = (found: ReadonlyArray<number>) => found.reduce((sum, n) => sum + n, 0)

      // Idle, its first claim found nothing: of 10 jobs enqueued, its room (2 running, 4
      // buffered) goes to it at once, and the other 4 wait for a claim.
      yield* scenario(0, (found) =>
        Effect.gen(function*() {
          const { release, worker } = yield* startWorker(found)
          expect(found).toEqual([0])
          const done = yield* finishedJobs(worker, 10)
          yield* JobClient.pipe(Effect.flatMap((client) => client.enqueueMany(Noop, Array.from({ length: 10 }, (_, i) => ({ payload: { i } })))))
          expect(yield* worker.held).toBe(6)
          expect(claimed(found)).toBe(0)
          yield* Deferred.succeed(release, undefined)
          const jobs = yield* done
          expect(new Set(jobs.map((event) => event.job.id)).size).toBe(10)
          expect(claimed(found)).toBe(4)
        }))

      // Its first claim came back full (256 of 256, with room for 44 more): due jobs may wait in
      // the store, so a job enqueued now is left to a claim rather than passing them.
      yield* scenario(300, (found) =>
        Effect.gen(function*() {
          const { release, worker } = yield* startWorker(found, 298)
          expect(found).toEqual([256])
          const done = yield* finishedJobs(worker, 301)
          const id = yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Noop, { i: 300 })))
          expect(yield* worker.held).toBe(256)
          expect((yield* Testing.getJob(id)).state).toBe("available")
          yield* Deferred.succeed(release, undefined)
          yield* done
          expect(claimed(found)).toBe(301)
        }))
    }))

  it.scoped("deletes each job as it completes when completed jobs are kept for no time; failures stay", () =>
    Effect.gen(function*() {
      const Quick = Job.make({ name: "quick", payload: Schema.Struct({ fail: Schema.Boolean }), error: Boom, maxAttempts: 1 })
      const worker = yield* start(Worker.layer({
        handlers: [Quick.handler(({ fail }) => fail ? Effect.fail(new Boom({ reason: "no" })) : Effect.void)],
        retention: { completed: 0 },
        // No pruner during the test: what is gone was deleted by its settlement.
        pruneInterval: "1 day"
      }))
      const done = yield* finishedJobs(worker, 2)
      const client = yield* JobClient
      const ok = yield* client.enqueue(Quick, { fail: false })
      const failed = yield* client.enqueue(Quick, { fail: true })
      const finished = yield* done
      expect(finished.map((event) => [event.job.id, event.outcome, event.applied])).toEqual(
        expect.arrayContaining([[ok, "Complete", true], [failed, "Discard", true]])
      )
      const store = yield* JobStore
      expect(yield* store.get(ok)).toEqual(Option.none())
      expect(Option.map(yield* store.get(failed), (job) => job.state)).toEqual(Option.some("discarded"))
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("lets a process service be swapped for a test layer", () =>
    Effect.gen(function*() {
      class Mailer extends Context.Tag("Mailer")<Mailer, { readonly send: (to: string) => Effect.Effect<void> }>() {}
      const Welcome = Job.make({ name: "welcome", payload: Schema.Struct({ to: Schema.String }) })
      const WelcomeHandler = Welcome.handler(({ to }) => Effect.flatMap(Mailer, (mailer) => mailer.send(to)))
      const sent = yield* Ref.make<ReadonlyArray<string>>([])
      const MailerTest = Layer.succeed(Mailer, { send: (to) => Ref.update(sent, (all) => [...all, to]) })
      const worker = yield* start(Worker.layer({ handlers: [WelcomeHandler] }).pipe(Layer.provide(MailerTest)))
      const done = yield* finishedJobs(worker, 2)
      yield* JobClient.pipe(Effect.flatMap((client) =>
        client.enqueueMany(Welcome, [{ payload: { to: "ada@example.com" } }, { payload: { to: "alan@example.com" } }])
      ))
      yield* done
      expect([...(yield* Ref.get(sent))].sort()).toEqual(["ada@example.com", "alan@example.com"])
    }).pipe(Effect.provide(Testing.layer)))
})

describe("graceful shutdown", () => {
  const Slow = Job.make({ name: "slow", payload: Schema.Struct({ seconds: Schema.Number }) })

  it.scoped("waits for running jobs to finish within the grace period", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      const handler = Slow.handler(({ seconds }) =>
        Effect.zipRight(Deferred.succeed(started, undefined), Effect.sleep(`${seconds} seconds`))
      )
      yield* Layer.buildWithScope(Worker.layer({ handlers: [handler], shutdownGrace: "25 seconds" }), scope)
      const id = yield* JobClient.pipe(Effect.flatMap((client) => client.enqueue(Slow, { seconds: 20 })))
      yield* Deferred.await(started)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("19 seconds")
      expect(Option.isNone(yield* Fiber.poll(closing))).toBe(true)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      expect(yield* Testing.getJob(id)).toMatchObject({ state: "completed", attempt: 1 })
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("sees a claim still in flight when shutdown begins through: its jobs run or are given back", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const claimed = yield* Deferred.make<void>()
      // The database has claimed the jobs, and its answer is still on the way.
      const slowAnswer = Layer.succeed(JobStore, {
        ...store,
        claim: (request) =>
          Effect.tap(store.claim(request), ({ jobs }) =>
            jobs.length === 0 ? Effect.void : Effect.zipRight(Deferred.succeed(claimed, undefined), Effect.sleep("1 second")))
      })
      const ids = yield* Effect.map(
        store.insert([1, 2].map((n) => insertOf(Task.queue, { name: Task.name, runAt: 0, payload: JSON.stringify({ n }) }))),
        (results) => results.map((r) => r.id)
      )
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Worker.layer({ handlers: [Task.handler(() => Effect.void)] }), scope).pipe(
        Effect.provide(slowAnswer)
      )
      yield* Deferred.await(claimed)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      // Run to completion or given back, but never left running on a lease no one renews.
      const jobs = yield* Effect.forEach(ids, Testing.getJob)
      for (const job of jobs) expect([["completed", 1], ["available", 0]]).toContainEqual([job.state, job.attempt])
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("gives back a job handed over in this process once the worker has begun to shut down", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      let local: LocalWorker | undefined
      const capturing = Layer.succeed(JobStore, {
        ...store,
        registerLocalWorker: (worker) => Effect.zipRight(Effect.sync(() => (local = worker)), store.registerLocalWorker(worker))
      })
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Worker.layer({ handlers: [Task.handler(() => Effect.void)] }), scope).pipe(
        Effect.provide(capturing)
      )
      // Let the runners start and wait for work.
      let reservation: LocalReservation | undefined
      for (let i = 0; i < 100 && reservation === undefined; i++) {
        yield* Effect.yieldNow()
        reservation = local!.reserve(Task.queue, Task.name, 1)
      }
      expect(reservation?.count).toBe(1)
      // Never for a job no handler here knows.
      expect(local!.reserve(Task.queue, "unknown", 1)).toBeUndefined()
      // The enqueue's insert returns only after the worker stopped, with the job claimed for it.
      yield* Scope.close(scope, Exit.void)
      yield* store.insert([insertOf(Task.queue, { name: Task.name, runAt: 0 })])
      const [job] = (yield* store.claim({ workerId: local!.workerId, queues: [{ queue: Task.queue, limit: 1 }], leaseDuration: local!.leaseDuration })).jobs
      yield* reservation!.take([job!])
      expect(yield* Testing.getJob(job!.id)).toMatchObject({ state: "available", attempt: 0 })
    }).pipe(Effect.provide(Testing.layer)))

  it.scoped("interrupts and releases jobs still running when the grace period ends, and returns buffered ones", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      let finalized = 0
      const started = yield* Deferred.make<void>()
      const handler = Slow.handler(() =>
        Effect.gen(function*() {
          yield* Effect.addFinalizer(() => Effect.sync(() => finalized++))
          yield* Deferred.succeed(started, undefined)
          return yield* Effect.never
        })
      )
      const worker = yield* Layer.buildWithScope(
        Worker.layer({ handlers: [handler], concurrency: 1, prefetch: 5, shutdownGrace: "25 seconds" }),
        scope
      ).pipe(Effect.map(Context.get(Worker.Worker)))
      const client = yield* JobClient
      const ids = yield* Effect.map(
        client.enqueueMany(Slow, [1, 2, 3].map((seconds) => ({ payload: { seconds } }))),
        (results) => results.map((r) => r.id)
      )
      yield* Deferred.await(started)
      expect(yield* worker.held).toBe(3)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("24 seconds")
      expect(Option.isNone(yield* Fiber.poll(closing))).toBe(true)
      const buffered = yield* Effect.forEach(ids.slice(1), Testing.getJob)
      expect(buffered.map((job) => [job.state, job.attempt])).toEqual([["available", 0], ["available", 0]])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      expect(finalized).toBe(1)
      expect(yield* Testing.getJob(ids[0]!)).toMatchObject({ state: "available", attempt: 0, errors: [] })
    }).pipe(Effect.provide(Testing.layer)))
})
