/**
 * docs/defining-jobs.md: payload Schemas, errors, retries, timeouts, snooze and cancel.
 */
import { Duration, Effect, Schedule, Schema } from "effect"
import { Backoff, cancel, Job, JobContext, snooze } from "conveyor"

// #region definition
export class CardDeclined extends Schema.TaggedError<CardDeclined>()("CardDeclined", {
  code: Schema.String
}) {}

export const ChargeInvoice = Job.make({
  name: "charge_invoice", // persisted: never rename it, rename the constant instead
  queue: "billing",
  payload: Schema.Struct({
    invoiceId: Schema.String,
    amountCents: Schema.Int.pipe(Schema.positive()),
    currency: Schema.Literal("EUR", "USD")
  }),
  success: Schema.Struct({ chargeId: Schema.String }), // stored with the completed job
  error: CardDeclined, // stored, encoded, with each failed attempt
  maxAttempts: 5,
  timeout: "30 seconds",
  priority: 0
})
// #endregion definition

// #region handler
export const ChargeInvoiceHandler = ChargeInvoice.handler(({ amountCents, invoiceId }) =>
  Effect.gen(function*() {
    const job = yield* JobContext
    yield* Effect.logInfo(`charging ${invoiceId}, attempt ${job.attempt} of ${job.maxAttempts}`)
    if (amountCents > 1_000_000) return yield* new CardDeclined({ code: "limit" }) // retried with backoff
    return { chargeId: `ch_${invoiceId}` }
  })
)
// #endregion handler

// #region backoff
export const SyncContacts = Job.make({
  name: "sync_contacts",
  payload: Schema.Struct({ accountId: Schema.String }),
  maxAttempts: 10,
  // Any Schedule: here 5 s, 10 s, 20 s, ... capped at 10 minutes, with jitter.
  backoff: Schedule.exponential("5 seconds").pipe(
    Schedule.jittered,
    Schedule.modifyDelay((delay) => Duration.min(delay, Duration.minutes(10)))
  )
})

export const PollExport = Job.make({
  name: "poll_export",
  payload: Schema.Struct({ exportId: Schema.String }),
  backoff: Backoff.defaultBackoff // exponential from 1 s with jitter, capped at 1 hour
})
// #endregion backoff

// #region outcomes
export class ExportFailed extends Schema.TaggedError<ExportFailed>()("ExportFailed", {
  reason: Schema.String
}) {}

export const DownloadReport = Job.make({
  name: "download_report",
  payload: Schema.Struct({ reportId: Schema.String, status: Schema.Literal("pending", "ready", "expired", "failed") }),
  error: ExportFailed
})

export const DownloadReportHandler = DownloadReport.handler(({ reportId, status }) => {
  switch (status) {
    case "pending":
      return snooze("1 minute") // runs again later; the attempt is not spent
    case "expired":
      return cancel(`report ${reportId} expired`) // stops for good: state "cancelled"
    case "failed":
      return Effect.fail(new ExportFailed({ reason: "the export failed upstream" })) // retried
    case "ready":
      return Effect.logInfo(`downloading ${reportId}`) // completes
  }
})
// #endregion outcomes
