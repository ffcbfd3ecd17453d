/**
 * docs/enqueueing.md: delays, priorities, unique keys, and enqueueing in your own transaction.
 */
import { SqlClient } from "@effect/sql"
import { DateTime, Effect, Schema } from "effect"
import { Job, JobClient } from "conveyor"

export const SendReminder = Job.make({
  name: "send_reminder",
  queue: "mail",
  payload: Schema.Struct({ userId: Schema.String, kind: Schema.Literal("trial-ending", "invoice-due") })
})

// #region options
export const enqueueReminders = Effect.gen(function*() {
  const jobs = yield* JobClient

  // Now. The payload is checked against its Schema before anything is stored.
  const id = yield* jobs.enqueue(SendReminder, { userId: "u_1", kind: "trial-ending" })

  // Later: after a delay, or at a time.
  yield* jobs.enqueue(SendReminder, { userId: "u_2", kind: "invoice-due" }, { delay: "3 days" })
  const monday = DateTime.unsafeMake("2026-12-07T09:00:00Z")
  yield* jobs.enqueue(SendReminder, { userId: "u_3", kind: "invoice-due" }, { runAt: monday })

  // Lower runs first (default: the job's priority, 0 unless set).
  yield* jobs.enqueue(SendReminder, { userId: "u_vip", kind: "invoice-due" }, { priority: -10 })

  // A tenant (JobContext.tenantId, the `tenantId` log annotation) and free-form metadata.
  yield* jobs.enqueue(SendReminder, { userId: "u_4", kind: "trial-ending" }, {
    tenantId: "ws_acme",
    metadata: { requestId: "req_123" }
  })

  // Many at once: validated as a whole, stored in one round trip.
  yield* jobs.enqueueMany(SendReminder, [
    { payload: { userId: "u_5", kind: "trial-ending" } },
    { payload: { userId: "u_6", kind: "trial-ending" }, options: { delay: "1 hour" } }
  ])

  // Look it up, cancel it, or run a finished one again.
  const job = yield* jobs.get(id)
  yield* Effect.logInfo(`job ${job.id} is ${job.state}`)
})
// #endregion options

// #region unique
/** At most one live job per invoice: a second enqueue returns the first job's id. */
export const ChaseInvoice = Job.make({
  name: "chase_invoice",
  payload: Schema.Struct({ invoiceId: Schema.String }),
  uniqueKey: ({ invoiceId }) => invoiceId
})

export const chaseTwice = Effect.gen(function*() {
  const jobs = yield* JobClient
  const first = yield* jobs.enqueue(ChaseInvoice, { invoiceId: "inv_9" })
  const second = yield* jobs.enqueue(ChaseInvoice, { invoiceId: "inv_9" })
  // first === second while the job is available, scheduled, running or retryable.
  const [again] = yield* jobs.enqueueMany(ChaseInvoice, [{ payload: { invoiceId: "inv_9" } }])
  yield* Effect.logInfo(`${first} ${second}: inserted again? ${again?.inserted}`) // false
})
// #endregion unique

// #region transaction
/** Your write and its job commit together, or not at all. */
export const signUp = (email: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobClient
    return yield* sql.withTransaction(
      Effect.gen(function*() {
        const [user] = yield* sql<{ id: string }>`INSERT INTO users (email) VALUES (${email}) RETURNING id`
        yield* jobs.enqueue(SendReminder, { userId: user!.id, kind: "trial-ending" }, { delay: "13 days" })
        return user!.id
        // A failure anywhere above, even after the enqueue, rolls back the user and the job.
      })
    )
  })
// #endregion transaction
