import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Queue, Redacted, Schedule, Schema, Scope, Stream } from "effect"
import { Job, JobClient, JobStore, Worker } from "conveyor"
import * as Pg from "conveyor/pg"
import { insertOf, jobStoreSuite } from "./conformance/jobStoreSuite.js"
import type { Signal } from "../src/stores/sql/dialect.js"
import { makePgDialect } from "../src/stores/sql/pg.js"
import { makeSqlStore } from "../src/stores/sql/store.js"
import { dropSchemaAfterwards, freshSchema, pgClientLayer, pgStoreLayer, pgUrl } from "./databases.js"
import { start } from "./helpers.js"

// On the application's own `SqlClient`, whose statements go unnamed.
jobStoreSuite("postgresql", pgStoreLayer())

/** The shipped layer on its own pool, in a fresh schema, by default on one connection. */
const shippedLayer = (
  preparedStatements?: boolean,
  options: { readonly maxConnections?: number; readonly applicationName?: string; readonly schema?: string } = {}
) => {
  const schema = options.schema ?? freshSchema()
  return Layer.provideMerge(
    dropSchemaAfterwards(schema),
    Pg.layerWith({
      url: Redacted.make(pgUrl),
      schema,
      maxConnections: options.maxConnections ?? 1,
      ...(options.applicationName === undefined ? {} : { applicationName: options.applicationName }),
      ...(preparedStatements === undefined ? {} : { preparedStatements })
    })
  )
}

// On the shipped layer, whose pool keeps the hot statements prepared.
jobStoreSuite("postgresql, prepared statements", shippedLayer())
// With room in the pool, single statements go on a connection kept out of it while free.
jobStoreSuite("postgresql, a connection kept for single statements", shippedLayer(undefined, { maxConnections: 4 }))

const Ping = Job.make({ name: "ping", queue: "pings", payload: Schema.Struct({ n: Schema.Number }) })

/** The names of the statements prepared on the pool's only connection. */
const preparedStatements = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ name: string; statement: string }>`SELECT name, statement FROM pg_prepared_statements`)

describe("prepared statements", () => {
  it.layer(shippedLayer())((it) => {
    it.effect("an enqueue and a claim are prepared once and reused", () =>
      Effect.gen(function*() {
        const client = yield* JobClient
        yield* client.enqueue(Ping, { n: 1 })
        yield* client.enqueue(Ping, { n: 2 })
        const statements = yield* preparedStatements
        assert.isTrue(statements.length >= 1)
        for (const { statement } of statements) assert.include(statement, "conveyor:prepared")
        const inserts = statements.filter(({ statement }) => statement.includes("INSERT INTO"))
        // Two enqueues, one prepared insert.
        assert.strictEqual(inserts.length, 1)
      }))
  })

  it.layer(shippedLayer())((it) => {
    it.effect("a single enqueue still joins the caller's transaction", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const client = yield* JobClient
        const committed = yield* sql.withTransaction(client.enqueue(Ping, { n: 1 }))
        const failed = yield* sql.withTransaction(
          Effect.zipRight(client.enqueue(Ping, { n: 2 }), Effect.fail("rolled back"))
        ).pipe(Effect.flip)
        assert.strictEqual(failed, "rolled back")
        const pings = yield* Effect.flatMap(JobStore, (store) => store.list({ name: "ping" }))
        assert.deepStrictEqual(pings.map((job) => [job.id, JSON.parse(job.payload).n]), [[committed, 1]])
      }))
  })

  it.layer(shippedLayer(false))((it) => {
    it.effect("can be turned off, for a pooler that cannot keep them", () =>
      Effect.gen(function*() {
        const client = yield* JobClient
        yield* client.enqueue(Ping, { n: 1 })
        assert.deepStrictEqual(yield* preparedStatements, [])
      }))
  })
})

describe("the connection kept for single statements", () => {
  /** Sessions of this application name other than the caller's own. */
  const sessions = (applicationName: string) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.map(
        sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
                           WHERE application_name = ${applicationName} AND pid <> pg_backend_pid()`,
        (rows) => rows[0]!.n
      ))
  const terminateOthers = (applicationName: string) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = ${applicationName} AND pid <> pg_backend_pid()`)
  const pings = Effect.flatMap(JobStore, (store) => store.list({ name: "ping" }))

  it.layer(shippedLayer(undefined, { maxConnections: 3 }))((it) => {
    it.effect("concurrent single enqueues all land, on it or through the pool", () =>
      Effect.gen(function*() {
        const client = yield* JobClient
        const ids = yield* Effect.forEach(Array.from({ length: 40 }, (_, n) => n), (n) => client.enqueue(Ping, { n }), {
          concurrency: "unbounded"
        })
        assert.strictEqual(new Set(ids).size, 40)
        const stored = yield* pings
        assert.deepStrictEqual(stored.map((job) => JSON.parse(job.payload).n).sort((a, b) => a - b), Array.from({ length: 40 }, (_, n) => n))
      }))
  })

  const terminated = `conveyor-test-terminated-${process.pid}`
  it.live("is replaced once its session is terminated, losing no enqueue", () =>
    Effect.gen(function*() {
      const client = yield* JobClient
      // The first single statement takes the connection out of the pool; the second uses it.
      yield* client.enqueue(Ping, { n: 0 })
      yield* client.enqueue(Ping, { n: 1 })
      yield* terminateOthers(terminated)
      yield* sessions(terminated).pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (n) => n === 0, times: 100 }))
      // An enqueue may still be sent on the broken connection before its end is read: it fails
      // with a StoreError, and the next goes through another.
      const outcomes = yield* Effect.forEach([2, 3, 4], (n) => Effect.either(client.enqueue(Ping, { n })))
      const failed = outcomes.filter((outcome) => outcome._tag === "Left")
      assert.isAtMost(failed.length, 1)
      for (const outcome of failed) assert.strictEqual(outcome.left._tag, "StoreError")
      assert.deepStrictEqual(outcomes.slice(1).map((outcome) => outcome._tag), ["Right", "Right"])
      const landed = [0, 1, ...[2, 3, 4].filter((_, i) => outcomes[i]!._tag === "Right")]
      assert.deepStrictEqual((yield* pings).map((job) => JSON.parse(job.payload).n).sort(), landed)
    }).pipe(Effect.provide(shippedLayer(undefined, { maxConnections: 4, applicationName: terminated }))))

  it.live("is closed with the store", () =>
    Effect.gen(function*() {
      const applicationName = `conveyor-test-closed-${process.pid}`
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(shippedLayer(undefined, { maxConnections: 4, applicationName }), scope)
      yield* Effect.flatMap(JobClient, (client) => Effect.zipRight(client.enqueue(Ping, { n: 1 }), client.enqueue(Ping, { n: 2 }))).pipe(
        Effect.provide(context)
      )
      assert.isAtLeast(yield* sessions(applicationName), 1)
      yield* Scope.close(scope, Exit.void)
      // (The server ends a closed connection's session shortly after.) The repetition answers
      // the schedule's count, not the sessions: they are read again once it is over.
      yield* sessions(applicationName).pipe(
        Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (n) => n === 0, times: 500 })
      )
      assert.strictEqual(yield* sessions(applicationName), 0)
    }).pipe(Effect.provide(pgClientLayer)))
})

describe("notifications", () => {
  const schema = freshSchema("listen")
  /** Sessions listening for this schema's jobs. */
  const listeners = Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE ${`LISTEN "${schema}:jobs"%`}`,
      (rows) => rows[0]!.n
    ))

  it.live("are listened to while someone subscribes (a worker), not by a process that only enqueues", () =>
    Effect.gen(function*() {
      yield* Effect.flatMap(JobClient, (client) => client.enqueue(Ping, { n: 1 })).pipe(
        Effect.provide(JobClient.layer)
      )
      assert.strictEqual(yield* listeners, 0)
      const store = yield* JobStore
      const subscriptions = yield* Scope.make()
      const wakeups = yield* Scope.extend(store.subscribeWakeups, subscriptions)
      // Subscribing does not wait for the connection; once listening, the store wakes every queue.
      yield* Stream.runDrain(Stream.take(Stream.filter(wakeups, (queue) => queue === "*"), 1))
      assert.strictEqual(yield* listeners, 1)
      // A second subscriber shares the one listening connection, and hears of inserts.
      yield* Scope.extend(store.subscribeCancellations, subscriptions)
      yield* store.insert([insertOf("pings")])
      // Once, by the insert's NOTIFY: while listening, the store does not also wake its own
      // process's workers for its own writes (each wake-up costs a claim).
      const heard = yield* Stream.runCollect(
        Stream.filter(wakeups, (queue) => queue !== "*").pipe(Stream.interruptWhen(Effect.sleep("300 millis")))
      )
      assert.deepStrictEqual(Chunk.toReadonlyArray(heard), ["pings"])
      assert.strictEqual(yield* listeners, 1)
      // Once the last subscriber is gone (the worker stopped), so is the listening connection.
      yield* Scope.close(subscriptions, Exit.void)
      // (The server ends the closed connection's session shortly after.)
      // (The repetition answers the schedule's count: the listeners are read again once it is over.)
      yield* listeners.pipe(Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (n) => n === 0, times: 100 }))
      assert.strictEqual(yield* listeners, 0)
      // And a new subscriber listens again.
      const again = yield* store.subscribeWakeups
      yield* Stream.runDrain(Stream.take(Stream.filter(again, (queue) => queue === "*"), 1))
      assert.strictEqual(yield* listeners, 1)
    }).pipe(Effect.scoped, Effect.provide(pgStoreLayer(schema))))

  it.live("are sent by each inserting statement, once per queue of the jobs it leaves waiting", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const wakeups = yield* store.subscribeWakeups
      const heard: Array<string> = []
      const connected = yield* Deferred.make<void>()
      yield* Effect.forkScoped(Stream.runForEach(wakeups, (queue) =>
        queue === "*" ? Deferred.succeed(connected, undefined) : Effect.sync(() => void heard.push(queue))
      ))
      yield* Deferred.await(connected)
      const queue = (label: string) => `${label}-${schema}`.replace(/_/g, "-")
      // A local worker with room for one job of queue "handed".
      yield* store.registerLocalWorker({
        workerId: "local",
        leaseDuration: Duration.seconds(30),
        reserve: (q, _name, count) =>
          q === queue("handed") || q === queue("handed-one")
            ? { count: Math.min(count, 1), take: () => Effect.void, cancel: () => {} }
            : undefined
      })
      // A batch across two queues; a batch with unique keys, then again (nothing inserted, nothing
      // announced); a single job with a unique key, twice; a job due later; a batch of which
      // one job goes to the local worker and one waits; a single job for the local worker.
      yield* store.insert([insertOf(queue("a")), insertOf(queue("b")), insertOf(queue("a"))])
      const uniqueBatch = [insertOf(queue("unique"), { uniqueKey: `k1-${schema}` }), insertOf(queue("unique"), { uniqueKey: `k2-${schema}` })]
      yield* store.insert(uniqueBatch)
      yield* store.insert(uniqueBatch)
      yield* store.insert([insertOf(queue("unique-one"), { uniqueKey: `k3-${schema}` })])
      yield* store.insert([insertOf(queue("unique-one"), { uniqueKey: `k3-${schema}` })])
      yield* store.insert([insertOf(queue("later"), { runAt: Date.now() + 60_000 })])
      yield* store.insert([insertOf(queue("handed")), insertOf(queue("handed"))])
      yield* store.insert([insertOf(queue("handed-one"))])
      const expected = [queue("a"), queue("b"), queue("unique"), queue("unique-one"), queue("later"), queue("handed")].sort()
      for (let i = 0; i < 100 && heard.length < expected.length; i++) yield* Effect.sleep("10 millis")
      // Anything more (a second NOTIFY, or one for the job handed over) would come by now.
      yield* Effect.sleep("200 millis")
      assert.deepStrictEqual([...heard].sort(), expected)
      const handed = yield* store.list({ queue: queue("handed-one") })
      assert.deepStrictEqual(handed.map((job) => job.state), ["running"])
    }).pipe(Effect.scoped, Effect.provide(pgStoreLayer())))

  it.live("wake this process for its own insert when the listener connected only while the insert ran", () =>
    Effect.gen(function*() {
      const schema = freshSchema()
      yield* Effect.addFinalizer(() => Effect.orDie(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`))))
      const dialect = yield* makePgDialect(schema)
      yield* dialect.migrate
      // The listener's news come from the test: it connects after the insert has committed (so
      // the insert's NOTIFY went to no one), and is seen connected before the insert returns.
      const signals = yield* Queue.unbounded<Signal>()
      const heard: Array<string> = []
      const heardStar = yield* Deferred.make<void>()
      const store = yield* makeSqlStore({
        ...dialect,
        signals: Stream.fromQueue(signals),
        insert: (rows, now) =>
          Effect.tap(dialect.insert(rows, now), () => Effect.zipRight(Queue.offer(signals, { _tag: "Connected" }), Deferred.await(heardStar)))
      })
      const wakeups = yield* store.subscribeWakeups
      yield* Effect.forkScoped(Stream.runForEach(wakeups, (queue) =>
        Effect.sync(() => heard.push(queue)).pipe(Effect.zipRight(queue === "*" ? Deferred.succeed(heardStar, undefined) : Effect.void))
      ))
      yield* store.insert([insertOf("late-listener")])
      for (let i = 0; i < 100 && !heard.includes("late-listener"); i++) yield* Effect.sleep("10 millis")
      assert.deepStrictEqual(heard, ["*", "late-listener"])
    }).pipe(Effect.scoped, Effect.provide(pgClientLayer)))
})

describe("a job handed to a worker of this process", () => {
  const stores = [
    ["on its own pool", (schema: string) => shippedLayer(undefined, { maxConnections: 4, schema })],
    ["on the application's client", (schema: string) => Layer.provideMerge(JobClient.layer, pgStoreLayer(schema))]
  ] as const
  /** A store in a fresh schema with an idle worker of this process, which reports each job it starts. */
  const idleWorker = (storeLayer: (schema: string) => Layer.Layer<JobClient | SqlClient.SqlClient | JobStore, unknown, SqlClient.SqlClient>) =>
    Effect.gen(function*() {
      const schema = freshSchema()
      const context = yield* Layer.build(storeLayer(schema))
      const started = yield* Deferred.make<number>()
      yield* start(Worker.layer({ handlers: [Ping.handler(({ n }) => Deferred.succeed(started, n))] })).pipe(
        Effect.provide(context)
      )
      // Until its runners wait for work, a job would be inserted waiting, not handed over.
      yield* Effect.sleep("100 millis")
      return { schema, sql: Context.get(context, SqlClient.SqlClient), client: Context.get(context, JobClient), started }
    })

  for (const [name, storeLayer] of stores) {
    it.live(`starts before its insert is flushed to disk; the enqueue answers once it is (${name})`, () =>
      Effect.gen(function*() {
        const { client, schema, sql, started } = yield* idleWorker(storeLayer)
        // The statement that waits for the flush writes the marker sequence: an open transaction
        // altering it holds that statement back.
        const locked = yield* Deferred.make<void>()
        const unlock = yield* Deferred.make<void>()
        yield* sql.withTransaction(
          sql.unsafe(`ALTER SEQUENCE "${schema}".flush_marker INCREMENT BY 1`).pipe(
            Effect.zipRight(Deferred.succeed(locked, undefined)),
            Effect.zipRight(Deferred.await(unlock))
          )
        ).pipe(Effect.forkScoped)
        yield* Deferred.await(locked)
        const enqueue = yield* Effect.forkScoped(client.enqueue(Ping, { n: 7 }))
        assert.strictEqual(yield* Deferred.await(started), 7)
        yield* Effect.sleep("200 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(enqueue)))
        yield* Deferred.succeed(unlock, undefined)
        const id = yield* Fiber.join(enqueue)
        assert.strictEqual((yield* client.get(id)).attempt, 1)
      }).pipe(Effect.scoped, Effect.provide(pgClientLayer)))

    it.live(`fails its enqueue with a StoreError when the flush fails (${name})`, () =>
      Effect.gen(function*() {
        const { client, schema, sql, started } = yield* idleWorker(storeLayer)
        yield* sql.unsafe(`DROP SEQUENCE "${schema}".flush_marker`)
        const outcome = yield* Effect.either(client.enqueue(Ping, { n: 8 }))
        assert.isTrue(outcome._tag === "Left" && outcome.left._tag === "StoreError")
        // Committed already, the job is not taken back: the caller cannot tell that it is durable.
        assert.strictEqual(yield* Deferred.await(started), 8)
      }).pipe(Effect.scoped, Effect.provide(pgClientLayer)))
  }
})
