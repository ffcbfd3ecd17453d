/**
 * Retry backoff: how long a failed job waits before its next attempt.
 *
 * A backoff is an Effect `Schedule`; the delay before attempt `n + 1` is the schedule's `n`-th
 * delay, recomputed from the attempt number (the schedule's state is not persisted). When the
 * schedule ends before `maxAttempts` is reached, the job is discarded, as `Effect.retry` would stop.
 */
import { Clock, Duration, Effect, Option, Schedule, ScheduleDecision, ScheduleIntervals } from "effect"

export type Backoff = Schedule.Schedule<unknown, unknown, never>

/** Exponential backoff with jitter, capped: `base`, `base * factor`, ... up to `cap`. */
export const exponential = (options?: {
  readonly base?: Duration.DurationInput
  readonly factor?: number
  readonly cap?: Duration.DurationInput
}): Backoff => {
  const cap = Duration.decode(options?.cap ?? "1 hour")
  return Schedule.exponential(options?.base ?? "1 second", options?.factor ?? 2).pipe(
    Schedule.modifyDelay((delay) => Duration.min(delay, cap)),
    Schedule.jittered
  )
}

/** The default: 1 s, 2 s, 4 s, ... with ±20% jitter, never more than 1 hour. */
export const defaultBackoff: Backoff = exponential()

/**
 * The delay after failed attempt `attempt` (1-based), or none when the schedule has ended.
 * Steps the schedule without sleeping, as `Effect.retry` would see it after that many failures.
 */
export const delayAfter = (backoff: Backoff, attempt: number): Effect.Effect<Option.Option<Duration.Duration>> =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    let now = start
    let state = backoff.initial
    let delay = Duration.zero
    for (let i = 0; i < Math.max(1, attempt); i++) {
      const [next, , decision] = yield* backoff.step(now, undefined, state)
      if (ScheduleDecision.isDone(decision)) return Option.none()
      state = next
      const at = ScheduleIntervals.start(decision.intervals)
      delay = Duration.millis(Math.max(0, at - now))
      now = Math.max(now, at)
    }
    return Option.some(delay)
  })
