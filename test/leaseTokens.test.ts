/**
 * Fencing across a database crash, on the real databases. Claims (and a single job's insert for
 * a local worker) commit without waiting for the disk, so a crash can lose one whose worker
 * already runs the job. Here the crash is reproduced by its effect on the data: the row is put
 * back as it was before the lost write, and the job is claimed again (or its id reissued).
 * The first worker's lease must not settle the job its successor now holds.
 */
import { expect, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Deferred, Duration, Effect, Exit, Layer, Option, Scope } from "effect"
import { type JobRecord, JobStore, Settlement } from "conveyor"
import { freshQueue, insertOf } from "./conformance/jobStoreSuite.js"
import { freshSchema, pgStoreLayer, sqliteStoreLayer } from "./databases.js"

const schema = freshSchema("tokens")
const databases = [
  {
    name: "sqlite",
    layer: sqliteStoreLayer(),
    jobs: `"conveyor_jobs"`,
    /** The next insert takes this id again. */
    reissue: (id: string) => `UPDATE sqlite_sequence SET seq = ${Number(id) - 1} WHERE name = 'conveyor_jobs'`
  },
  {
    name: "postgresql",
    layer: pgStoreLayer(schema),
    jobs: `"${schema}".jobs`,
    reissue: (id: string) => `SELECT setval(pg_get_serial_sequence('"${schema}".jobs', 'id'), ${Number(id)}, false)`
  }
] as const

const lease = { leaseDuration: Duration.seconds(30) }
const leaseOf = (job: JobRecord) => ({ id: job.id, token: job.leaseToken })

for (const database of databases) {
  layer(database.layer, { excludeTestServices: true, timeout: 60_000 })(`lease tokens on ${database.name}`, (it) => {
    const claimOne = (workerId: string, queue: string) =>
      Effect.flatMap(JobStore, (store) =>
        Effect.map(store.claim({ workerId, queues: [{ queue, limit: 1 }], ...lease }), ({ jobs }) => {
          expect(jobs).toHaveLength(1)
          return jobs[0]!
        }))

    it.effect("a claim lost in a crash: the job's next claim gets another token, and the first worker cannot settle", () =>
      Effect.gen(function*() {
        const store = yield* JobStore
        const sql = yield* SqlClient.SqlClient
        const queue = freshQueue("lost-claim")
        const [inserted] = yield* store.insert([insertOf(queue, { runAt: Date.now() })])
        const first = yield* claimOne("worker-a", queue)
        expect(first.id).toBe(inserted!.id)

        // The claim never reached the disk: the row is as the insert left it.
        yield* sql.unsafe(`UPDATE ${database.jobs} SET state = 'available', attempt = 0, attempted_at = NULL,
          lease_token = 0, lease_expires_at = NULL, worker_id = NULL WHERE id = ${Number(first.id)}`)
        const second = yield* claimOne("worker-b", queue)
        expect(second.id).toBe(first.id)
        expect(second.attempt).toBe(first.attempt)
        expect(second.leaseToken).not.toBe(first.leaseToken)

        const beat = yield* store.heartbeat([leaseOf(first)], Duration.seconds(30))
        expect(beat.lost).toEqual([first.id])
        expect(yield* store.settle([Settlement.Complete({ ...leaseOf(first), result: "\"a\"" })])).toEqual([false])
        expect(Option.getOrThrow(yield* store.get(first.id))).toMatchObject({ state: "running", workerId: "worker-b" })
        expect(yield* store.settle([Settlement.Complete({ ...leaseOf(second), result: "\"b\"" })])).toEqual([true])
        expect(Option.getOrThrow(yield* store.get(first.id))).toMatchObject({ state: "completed", result: "\"b\"" })
      }))

    it.effect("a hand-over's insert lost in a crash: the job that gets its id cannot be settled with the lost job's lease", () =>
      Effect.gen(function*() {
        const store = yield* JobStore
        const sql = yield* SqlClient.SqlClient
        const queue = freshQueue("lost-handover")
        const handed = yield* Deferred.make<JobRecord>()
        const local = yield* Scope.make()
        yield* store.registerLocalWorker({
          workerId: "worker-a",
          leaseDuration: Duration.seconds(30),
          reserve: () => ({
            count: 1,
            take: (jobs) => Effect.asVoid(Deferred.succeed(handed, jobs[0]!)),
            cancel: () => {}
          })
        }).pipe(Scope.extend(local))
        yield* store.insert([insertOf(queue, { runAt: Date.now() })])
        const lost = yield* Deferred.await(handed)
        expect(Option.getOrThrow(yield* store.get(lost.id))).toMatchObject({
          state: "running",
          workerId: "worker-a",
          leaseToken: lost.leaseToken
        })
        yield* Scope.close(local, Exit.void)

        // The insert never reached the disk, nor the id's allocation: the next job takes its id.
        yield* sql.unsafe(`DELETE FROM ${database.jobs} WHERE id = ${Number(lost.id)}`)
        yield* sql.unsafe(database.reissue(lost.id))
        const [next] = yield* store.insert([insertOf(queue, { runAt: Date.now() })])
        expect(next!.id).toBe(lost.id)
        const claimed = yield* claimOne("worker-b", queue)
        expect(claimed.id).toBe(lost.id)
        expect(claimed.leaseToken).not.toBe(lost.leaseToken)

        expect(yield* store.settle([Settlement.Complete({ ...leaseOf(lost), result: null })])).toEqual([false])
        expect(yield* store.settle([Settlement.Complete({ ...leaseOf(claimed), result: null })])).toEqual([true])
      }))
  })
}
