/**
 * The `conveyor` executable: runs the CLI, and turns any failure into one line on stderr and a
 * non-zero exit code (2 for usage errors, which `@effect/cli` has already explained; 1 for the
 * rest). Stack traces are for bugs, and even those are cut to one line here.
 */
import { ValidationError } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Exit, Logger, Option } from "effect"
import { run } from "./commands.js"
import { commandLogger } from "./output.js"

const oneLine = (error: unknown): string => {
  if (typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "InvalidPayload") {
    const { job, message } = error as { job: string; message: string }
    return `invalid payload for job ${JSON.stringify(job)}: ${message}`
  }
  const text = error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
    ? String((error as { message: unknown }).message)
    : String(error)
  return (text.split("\n").find((line) => line.trim() !== "") ?? "failed").trim()
}

const program = Effect.suspend(() => run(process.argv)).pipe(
  Effect.tapErrorCause((cause) => {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure) && ValidationError.isValidationError(failure.value)) return Effect.void
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    const reason = Option.match(failure, {
      onSome: oneLine,
      onNone: () => `unexpected error: ${oneLine(Cause.squash(cause))}`
    })
    return Console.error(`conveyor: ${reason}`)
  }),
  Effect.provide(NodeContext.layer),
  Effect.provide(Logger.replace(Logger.defaultLogger, commandLogger))
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) => {
    if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return onExit(0)
    const failure = Cause.failureOption(exit.cause)
    onExit(Option.isSome(failure) && ValidationError.isValidationError(failure.value) ? 2 : 1)
  }
})
