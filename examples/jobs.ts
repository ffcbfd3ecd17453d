/**
 * The example's jobs: definitions (what is stored) and handlers (what runs).
 */
import { Effect, Schema } from "effect"
import { Job, JobContext, snooze } from "conveyor"
import { Mailer, WorkspaceSettings } from "./infrastructure.js"

export class ImageTooLarge extends Schema.TaggedError<ImageTooLarge>()("ImageTooLarge", {
  bytes: Schema.Number
}) {}

export const SendWelcomeEmail = Job.make({
  name: "send_welcome_email",
  queue: "mail",
  payload: Schema.Struct({ to: Schema.String, name: Schema.String }),
  maxAttempts: 5,
  timeout: "30 seconds"
})

export const ResizeImage = Job.make({
  name: "resize_image",
  queue: "images",
  payload: Schema.Struct({ url: Schema.String, bytes: Schema.Number }),
  success: Schema.Struct({ width: Schema.Number, height: Schema.Number }),
  error: ImageTooLarge,
  maxAttempts: 3
})

export const BuildReport = Job.make({
  name: "build_report",
  payload: Schema.Struct({ month: Schema.String }),
  uniqueKey: ({ month }) => month
})

export const handlers = [
  SendWelcomeEmail.handler(({ name, to }) =>
    Effect.gen(function*() {
      const mailer = yield* Mailer
      const workspace = yield* WorkspaceSettings
      const subject = workspace.fancyTemplates ? `✨ Welcome, ${name}!` : `Welcome, ${name}`
      yield* mailer.send({ to, subject })
    })
  ),
  ResizeImage.handler(({ bytes, url }) =>
    Effect.gen(function*() {
      if (bytes > 10_000_000) return yield* new ImageTooLarge({ bytes })
      yield* Effect.sleep("100 millis")
      yield* Effect.logInfo(`resized ${url}`)
      return { width: 640, height: 480 }
    })
  ),
  BuildReport.handler(({ month }) =>
    Effect.gen(function*() {
      const ctx = yield* JobContext
      // The first run finds the data not ready yet and asks to run again shortly.
      if (ctx.scheduledAt.epochMillis === ctx.enqueuedAt.epochMillis) {
        return yield* snooze("2 seconds")
      }
      yield* Effect.logInfo(`report for ${month} built`)
    })
  )
] as const
