/**
 * The cron scheduler: one fiber per schedule in every process. Each fiber sleeps until the
 * schedule's next tick (read from `Clock`, so `TestClock` drives it), then offers the tick to
 * the store, which enqueues it only if it is later than the schedule's stored last tick: of all
 * the processes racing for a tick, one wins, and a restart neither repeats nor loses one.
 */
import {
  Clock,
  Cron,
  DateTime,
  Duration,
  Effect,
  Either,
  Exit,
  Option,
  ParseResult,
  Schedule,
  Schema
} from "effect"
import type { AnyCronSchedule, CronSchedule } from "../CronSchedule.js"
import { InvalidSchedule, type StoreError } from "../Errors.js"
import type { AnySchema } from "../Job.js"
import type { JobInsert, JobStoreShape, Trigger } from "../JobStore.js"
import * as Metrics from "./metrics.js"
import { isValidName } from "./names.js"

// --- the cron entry stored in a job's metadata ------------------------------------------------

/** Reserved metadata key: which schedule and tick enqueued the job. */
export const cronMetadataKey = "conveyor.cron"

/** The unique key a schedule with `overlap: "skip"` gives its jobs. */
export const overlapKey = (schedule: string) => `conveyor.cron:${schedule}`

const CronEntry = Schema.Struct({ schedule: Schema.String, tick: Schema.DateTimeUtc })

export interface CronEntry {
  readonly schedule: string
  readonly tick: DateTime.Utc
}

const encodeCronEntry = Schema.encodeSync(CronEntry)
const decodeCronEntry = Schema.decodeUnknownOption(CronEntry)

/** The cron entry of a stored job: only jobs with trigger `cron` carry one. */
export const cronEntryOf = (trigger: Trigger, metadata: Readonly<Record<string, unknown>>): Option.Option<CronEntry> =>
  trigger === "cron" ? decodeCronEntry(metadata[cronMetadataKey]) : Option.none()

// --- parsing and tick arithmetic ---------------------------------------------------------------

export interface ParsedSchedule {
  readonly schedule: AnyCronSchedule
  readonly cron: Cron.Cron
  readonly zone: DateTime.TimeZone.Named
  /** Backfill window in milliseconds; undefined for `Skip`. */
  readonly backfillMillis: number | undefined
  /** The payload, for schedules with a fixed one: encoded once at start-up. */
  readonly fixedPayload: BuiltPayload | undefined
}

/** A tick's payload as stored JSON, and the unique key it gives the job. */
interface BuiltPayload {
  readonly json: string
  readonly uniqueKey: string | null
}

const invalid = (schedule: AnyCronSchedule, reason: InvalidSchedule["reason"], detail: string) =>
  new InvalidSchedule({ schedule: schedule.name, reason, detail })

const payloadFor = (schedule: AnyCronSchedule, tick: DateTime.Zoned): unknown =>
  typeof schedule.payload === "function" ? (schedule.payload as (tick: DateTime.Zoned) => unknown)(tick) : schedule.payload

/**
 * Encode a payload and derive the job's unique key: `overlap: "skip"` keys every job by the
 * schedule, so a live one holds off the next; otherwise the job's own key applies, as it would
 * through `JobClient`.
 */
const buildPayload = (schedule: AnyCronSchedule, payload: unknown): Effect.Effect<BuiltPayload, InvalidSchedule> =>
  Schema.encodeUnknown(schedule.job.payload as AnySchema)(payload).pipe(
    Effect.mapError((error) =>
      invalid(schedule, "payload", `payload does not match job "${schedule.job.name}": ${ParseResult.TreeFormatter.formatErrorSync(error)}`)
    ),
    Effect.flatMap((encoded) =>
      Effect.try({
        try: (): BuiltPayload => {
          const job = schedule.job
          const uniqueKey = schedule.overlap === "skip"
            ? overlapKey(schedule.name)
            : job.uniqueKey === undefined
            ? null
            : `${job.name}:${job.uniqueKey(payload)}`
          return { json: JSON.stringify(encoded), uniqueKey }
        },
        catch: (error) => invalid(schedule, "payload", `the job's uniqueKey function threw: ${String(error)}`)
      })
    )
  )

/**
 * The first tick strictly after `after` (epoch ms).
 *
 * Ticks are wall-clock times in the schedule's zone. `Cron.next` shifts a time that falls in a
 * spring-forward gap forward by the gap, and resolves a time repeated by a fall-back to its
 * first occurrence. Started inside the second pass of a repeated hour it answers a tick of the
 * first pass, which is in the past: stepping on from there until a tick is really later keeps
 * the rule "a repeated wall-clock time fires once, at its first occurrence".
 */
export const nextTickAfter = (cron: Cron.Cron, after: number): number => {
  let from = after
  for (let step = 0; step < 100_000; step++) {
    const next = Cron.next(cron, from).getTime()
    if (next > after) return next
    from = next
  }
  throw new Error(`no cron tick found after ${new Date(after).toISOString()}`)
}

export const parseSchedule = (schedule: AnyCronSchedule): Effect.Effect<ParsedSchedule, InvalidSchedule> =>
  Effect.gen(function*() {
    if (!isValidName(schedule.name)) {
      return yield* invalid(schedule, "name", `invalid schedule name: use 1-128 letters, digits, "_", "-", "." or ":"`)
    }
    if (!isValidName(schedule.queue)) {
      return yield* invalid(schedule, "name", `invalid queue name ${JSON.stringify(schedule.queue)}`)
    }
    const zone = yield* Option.match(DateTime.zoneMakeNamed(schedule.timeZone), {
      onNone: () =>
        Effect.fail(invalid(schedule, "timeZone", `unknown time zone ${JSON.stringify(schedule.timeZone)}: use an IANA name such as "Europe/Paris"`)),
      onSome: Effect.succeed
    })
    const cron = yield* Either.match(Cron.parse(schedule.cron, zone), {
      onLeft: (error) => Effect.fail(invalid(schedule, "expression", `invalid cron expression ${JSON.stringify(schedule.cron)}: ${error.message}`)),
      onRight: Effect.succeed
    })
    // A valid expression may still never match (e.g. "0 0 30 2 *"): find that out now.
    yield* Effect.try({
      try: () => nextTickAfter(cron, Date.UTC(2000, 0, 1)),
      catch: () => invalid(schedule, "expression", `cron expression ${JSON.stringify(schedule.cron)} never matches`)
    })
    let backfillMillis: number | undefined
    if (schedule.catchUp._tag === "Backfill") {
      const window = Duration.decodeUnknown(schedule.catchUp.window)
      if (Option.isNone(window) || !Duration.isFinite(window.value) || Duration.toMillis(window.value) < 1000) {
        return yield* invalid(schedule, "catchUp", "a backfill window must be a finite duration of at least 1 second")
      }
      backfillMillis = Duration.toMillis(window.value)
    }
    const fixedPayload = typeof schedule.payload === "function" ? undefined : yield* buildPayload(schedule, schedule.payload)
    return { schedule, cron, zone, backfillMillis, fixedPayload }
  })

export const parseSchedules = (schedules: ReadonlyArray<AnyCronSchedule>) =>
  Effect.gen(function*() {
    const seen = new Set<string>()
    for (const schedule of schedules) {
      if (seen.has(schedule.name)) return yield* invalid(schedule, "duplicate", "two schedules have this name")
      seen.add(schedule.name)
    }
    return yield* Effect.forEach(schedules, parseSchedule)
  })

export const nextTicks = (
  schedule: AnyCronSchedule,
  options: { readonly after: DateTime.DateTime; readonly count: number }
): Effect.Effect<ReadonlyArray<DateTime.Zoned>, InvalidSchedule> =>
  Effect.map(parseSchedule(schedule), ({ cron, zone }) => {
    const ticks: Array<DateTime.Zoned> = []
    let at = DateTime.toEpochMillis(options.after)
    for (let i = 0; i < options.count; i++) {
      at = nextTickAfter(cron, at)
      ticks.push(DateTime.unsafeMakeZoned(at, { timeZone: zone }))
    }
    return ticks
  })

/** Most ticks offered to the store in one pass; a long backfill continues on the next pass. */
const maxTicksPerPass = 1000

/**
 * The ticks to enqueue now, given that every tick at or before `floor` is done.
 * `Skip` enqueues the first tick after the floor, the one the scheduler was waiting for, even
 * if it wakes late, and drops the others it missed. `Backfill` enqueues every tick within the
 * window, in order.
 */
export const dueTicks = (parsed: ParsedSchedule, floor: number, now: number) => {
  const ticks: Array<number> = []
  if (parsed.backfillMillis === undefined) {
    const next = nextTickAfter(parsed.cron, floor)
    if (next <= now) ticks.push(next)
    return { ticks, complete: true }
  }
  let tick = nextTickAfter(parsed.cron, Math.max(floor, now - parsed.backfillMillis))
  while (tick <= now) {
    if (ticks.length === maxTicksPerPass) return { ticks, complete: false }
    ticks.push(tick)
    tick = nextTickAfter(parsed.cron, tick)
  }
  return { ticks, complete: true }
}

// --- the scheduler -----------------------------------------------------------------------------

export interface ScheduleStatus {
  readonly name: string
  readonly cron: string
  readonly timeZone: string
  readonly job: string
  readonly queue: string
  readonly catchUp: CronSchedule["catchUp"]
  readonly overlap: CronSchedule["overlap"]
  /** The last tick enqueued by any worker, if the schedule ever fired. */
  readonly lastTick: Option.Option<DateTime.Utc>
  /** The next tick to come, in the schedule's time zone. */
  readonly nextTick: DateTime.Zoned
}

/** Store errors are retried, from 100 ms doubling up to 10 s, so a tick is late, never lost. */
const storeRetry = Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("10 seconds")))

// Untraced: every process offers every tick, and a tick another process took is no news. The
// store's own span records the offer that won.
const enqueueTick = Effect.fnUntraced(function*(store: JobStoreShape, parsed: ParsedSchedule, tick: number) {
  const { schedule } = parsed
  const tickTime = DateTime.unsafeMakeZoned(tick, { timeZone: parsed.zone })
  const built = yield* Effect.exit(
    parsed.fixedPayload !== undefined
      ? Effect.succeed(parsed.fixedPayload)
      : Effect.try({
        try: () => payloadFor(schedule, tickTime),
        catch: (error) => invalid(schedule, "payload", `the payload function threw: ${String(error)}`)
      }).pipe(Effect.flatMap((value) => buildPayload(schedule, value)))
  )
  if (Exit.isFailure(built)) {
    // A bad payload is a bug in this tick's code, not an outage: log it and go on with the next.
    return yield* Effect.logError("cron tick dropped: its payload could not be built", built.cause)
  }
  const entry = encodeCronEntry({ schedule: schedule.name, tick: DateTime.toUtc(tickTime) })
  const insert: JobInsert = {
    name: schedule.job.name,
    queue: schedule.queue,
    payload: built.value.json,
    priority: schedule.priority,
    maxAttempts: schedule.maxAttempts,
    runAt: tick,
    trigger: "cron",
    tenantId: schedule.tenantId,
    metadata: JSON.stringify({ ...schedule.metadata, [cronMetadataKey]: entry }),
    uniqueKey: built.value.uniqueKey,
    traceContext: null
  }
  const result = yield* store.enqueueCronTick({ schedule: schedule.name, tick, job: insert })
  const tickLog = { tick: entry.tick }
  if (Option.isNone(result)) {
    yield* Effect.logDebug("cron tick already enqueued by another worker").pipe(Effect.annotateLogs(tickLog))
  } else if (!result.value.inserted) {
    yield* Effect.logInfo(
      schedule.overlap === "skip"
        ? "cron tick skipped: the schedule's previous job is still live"
        : "cron tick skipped: a live job holds the same unique key"
    ).pipe(Effect.annotateLogs({ ...tickLog, jobId: result.value.id }))
  } else {
    yield* Effect.sync(() => Metrics.recordSent(Metrics.seriesOf(insert.queue, insert.name), 1))
    yield* Effect.logDebug("cron tick enqueued").pipe(Effect.annotateLogs({ ...tickLog, jobId: result.value.id }))
  }
})

const lastTickOf = (store: JobStoreShape, name: string) =>
  Effect.map(store.cronLastTicks, (rows) => Option.fromNullable(rows.find((row) => row.schedule === name)?.tick))

/** Where a schedule starts in this process: every tick at or before the floor counts as done. */
const initialFloor = (store: JobStoreShape, parsed: ParsedSchedule, now: number) =>
  Effect.gen(function*() {
    const last = yield* lastTickOf(store, parsed.schedule.name)
    if (Option.isNone(last)) return now // a schedule that never fired starts with its next tick
    const missed = nextTickAfter(parsed.cron, last.value) <= now
    if (parsed.backfillMillis === undefined) {
      if (missed) yield* Effect.logInfo("skipping the ticks missed while no worker ran (catch-up: skip)")
      return Math.max(now, last.value)
    }
    if (missed) {
      yield* Effect.logInfo(`backfilling the ticks missed in the last ${Duration.format(parsed.backfillMillis)}`)
    }
    return last.value
  })

/** One pass: enqueue what is due, then return how long to sleep until the next tick. */
const pass = (store: JobStoreShape, parsed: ParsedSchedule, state: { floor: number | undefined }) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    state.floor ??= yield* initialFloor(store, parsed, now)
    const { complete, ticks } = dueTicks(parsed, state.floor, now)
    for (const tick of ticks) {
      yield* enqueueTick(store, parsed, tick)
      state.floor = tick
    }
    if (complete) state.floor = Math.max(state.floor, now)
    const next = nextTickAfter(parsed.cron, state.floor)
    return Duration.millis(Math.max(0, next - (yield* Clock.currentTimeMillis)))
  })

/** The schedule's fiber: runs until its scope closes; no failure stops it. */
export const runSchedule = (store: JobStoreShape, parsed: ParsedSchedule) =>
  Effect.gen(function*() {
    const state: { floor: number | undefined } = { floor: undefined }
    const retry = yield* Schedule.driver(storeRetry)
    while (true) {
      const exit = yield* Effect.exit(pass(store, parsed, state))
      if (Exit.isSuccess(exit)) {
        yield* retry.reset
        yield* Effect.sleep(exit.value)
      } else {
        yield* Effect.logWarning("cron scheduling failed; retrying", exit.cause)
        yield* Effect.ignore(retry.next(undefined))
      }
    }
  }).pipe(Effect.annotateLogs({ module: "CronScheduler", schedule: parsed.schedule.name }))

export const scheduleStatuses = (
  store: JobStoreShape,
  schedules: ReadonlyArray<ParsedSchedule>
): Effect.Effect<ReadonlyArray<ScheduleStatus>, StoreError> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const lastTicks = new Map((yield* store.cronLastTicks).map((row) => [row.schedule, row.tick]))
    return schedules.map(({ cron, schedule, zone }): ScheduleStatus => {
      const last = lastTicks.get(schedule.name)
      return {
        name: schedule.name,
        cron: schedule.cron,
        timeZone: schedule.timeZone,
        job: schedule.job.name,
        queue: schedule.queue,
        catchUp: schedule.catchUp,
        overlap: schedule.overlap,
        lastTick: Option.map(Option.fromNullable(last), (tick) => DateTime.unsafeMake(tick)),
        nextTick: DateTime.unsafeMakeZoned(nextTickAfter(cron, Math.max(now, last ?? now)), { timeZone: zone })
      }
    })
  })
