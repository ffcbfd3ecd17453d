/**
 * The application's infrastructure: long-lived services shared by every job (process scope),
 * and the per-job services built fresh for each job (job scope). An HTTP service would reuse
 * the process-scoped layers as they are.
 */
import { Context, Effect, Layer, Option, Ref } from "effect"
import { JobContext } from "conveyor"

/** A process-scoped client: one instance for the life of the worker. */
export class Mailer extends Context.Tag("example/Mailer")<Mailer, {
  readonly send: (message: { readonly to: string; readonly subject: string }) => Effect.Effect<void>
  readonly sent: Effect.Effect<number>
}>() {
  static readonly layer = Layer.scoped(
    Mailer,
    Effect.gen(function*() {
      const count = yield* Ref.make(0)
      yield* Effect.logInfo("mailer connected")
      yield* Effect.addFinalizer(() => Effect.logInfo("mailer disconnected"))
      return {
        send: (message) =>
          Effect.zipRight(Ref.update(count, (n) => n + 1), Effect.logInfo(`mail sent to ${message.to}: ${message.subject}`)),
        sent: Ref.get(count)
      }
    })
  )
}

/**
 * A job-scoped service: the settings and feature flags of the job's workspace, read when the
 * job starts and dropped when it ends, so a change is seen by the next job and never leaks
 * from one workspace's job into another's.
 */
export class WorkspaceSettings extends Context.Tag("example/WorkspaceSettings")<WorkspaceSettings, {
  readonly workspaceId: string
  readonly fancyTemplates: boolean
}>() {
  static readonly layer = Layer.scoped(
    WorkspaceSettings,
    Effect.gen(function*() {
      const ctx = yield* JobContext
      const workspaceId = Option.getOrElse(ctx.tenantId, () => "default")
      yield* Effect.logDebug(`workspace settings loaded for ${workspaceId}`)
      yield* Effect.addFinalizer(() => Effect.logDebug(`workspace settings released for ${workspaceId}`))
      return { workspaceId, fancyTemplates: workspaceId.endsWith("1") }
    })
  )
}

/** Everything the process holds for its whole life. */
export const ProcessLive = Mailer.layer
