import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Layer } from "effect"
import { WorkerConfig } from "conveyor"

const settingsFrom = (env: Record<string, string>) =>
  WorkerConfig.WorkerConfig.pipe(
    Effect.provide(WorkerConfig.layerConfig.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))))
  )

describe("WorkerConfig from the environment", () => {
  it.effect("reads settings and retention, with defaults for what is not set", () =>
    Effect.gen(function*() {
      const settings = yield* settingsFrom({
        CONVEYOR_CONCURRENCY: "4",
        CONVEYOR_RETENTION_COMPLETED: "0 seconds",
        CONVEYOR_RETENTION_DISCARDED: "30 days"
      })
      expect(settings.concurrency).toBe(4)
      expect(Duration.isZero(settings.retention.completed)).toBe(true)
      expect(Duration.toMillis(settings.retention.cancelled)).toBe(Duration.toMillis(WorkerConfig.defaults.retention.cancelled))
      expect(Duration.toMillis(settings.retention.discarded)).toBe(Duration.toMillis(Duration.days(30)))
      expect(Duration.toMillis((yield* settingsFrom({})).retention.completed)).toBe(Duration.toMillis(Duration.days(1)))
    }))

  it.effect("fails with a ConfigError naming a bad value", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(settingsFrom({ CONVEYOR_RETENTION_COMPLETED: "soon" }))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("CONVEYOR_RETENTION_COMPLETED")
    }))
})
