/**
 * docs/scoped-services.md: process-scoped and job-scoped services, and handlers that cannot
 * tell them apart.
 */
import { Context, Effect, Layer, Option, Ref, Schema } from "effect"
import { Job, JobContext, JobStore, Worker } from "conveyor"

// #region process
/** Process scope: one connection pool for the life of the worker, shared by every job. */
export class Mailer extends Context.Tag("app/Mailer")<Mailer, {
  readonly send: (to: string, subject: string) => Effect.Effect<void>
}>() {
  static readonly layer = Layer.scoped(
    Mailer,
    Effect.gen(function*() {
      yield* Effect.acquireRelease(Effect.logInfo("mail pool opened"), () => Effect.logInfo("mail pool closed"))
      return { send: (to, subject) => Effect.logInfo(`mail to ${to}: ${subject}`) }
    })
  )
}
// #endregion process

// #region job
/**
 * Job scope: built when a job starts, from its JobContext; released when it ends, whatever the
 * outcome. Nothing in it can leak into another job, let alone another tenant's.
 */
export class TenantSettings extends Context.Tag("app/TenantSettings")<TenantSettings, {
  readonly tenantId: string
  readonly locale: string
  readonly betaTemplates: boolean
}>() {
  static readonly layer = Layer.scoped(
    TenantSettings,
    Effect.gen(function*() {
      const job = yield* JobContext
      const tenantId = Option.getOrElse(job.tenantId, () => "default")
      // Read at job start: a flag flipped now is seen by the next job, never halfway through this one.
      const settings = { tenantId, locale: "en", betaTemplates: tenantId.startsWith("beta-") }
      yield* Effect.addFinalizer(() => Effect.logDebug(`settings of ${tenantId} released`))
      return settings
    })
  )
}

/** A per-job accumulator: its state must never be shared, so it lives and dies with the job. */
export class AuditTrail extends Context.Tag("app/AuditTrail")<AuditTrail, {
  readonly record: (entry: string) => Effect.Effect<void>
}>() {
  static readonly layer = Layer.scoped(
    AuditTrail,
    Effect.gen(function*() {
      const job = yield* JobContext
      const entries = yield* Ref.make<ReadonlyArray<string>>([])
      // Flushed once, when the job's scope closes: success, failure, timeout or shutdown.
      yield* Effect.addFinalizer(() =>
        Effect.flatMap(Ref.get(entries), (all) => Effect.logInfo(`job ${job.id}: ${all.length} audit entries`))
      )
      return { record: (entry) => Ref.update(entries, (all) => [...all, entry]) }
    })
  )
}
// #endregion job

// #region handler
export const SendWelcome = Job.make({
  name: "send_welcome",
  payload: Schema.Struct({ email: Schema.String })
})

/** Asks for three services by tag; which scope each lives in is not its concern. */
export const SendWelcomeHandler = SendWelcome.handler(({ email }) =>
  Effect.gen(function*() {
    const mailer = yield* Mailer // process-scoped
    const settings = yield* TenantSettings // job-scoped
    const audit = yield* AuditTrail // job-scoped
    const subject = settings.betaTemplates ? "Welcome to the beta!" : "Welcome!"
    yield* mailer.send(email, subject)
    yield* audit.record(`welcome sent to ${email}`)
  })
)
// #endregion handler

// #region wiring
/** The job-scoped layers may use JobContext and any process-scoped service. */
export const JobScopedLive = Layer.merge(TenantSettings.layer, AuditTrail.layer)

export const WorkerLive: Layer.Layer<Worker.Worker, never, JobStore> = Worker.layer({
  handlers: [SendWelcomeHandler],
  jobLayer: JobScopedLive // built fresh in every job's scope
}).pipe(
  Layer.provide(Mailer.layer) // built once, in the process scope
)
// #endregion wiring
