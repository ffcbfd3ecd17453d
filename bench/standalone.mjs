// What the standalone bench scripts (drain, enqueue-one, latency, produce-work) share: a store
// runtime of the chosen kind, and a CPU profile of one round.
import { Session } from 'node:inspector/promises'
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Redacted } from 'effect'
import { SqlClient } from '@effect/sql'
import { JobClient, JobStore } from '../dist/index.js'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * A runtime with the store (`sqlite` in a fresh file, `pg` in schema `conveyor_<label>` of
 * DATABASE_URL, or `memory`) and its client, logging warnings only. `close` drops the PostgreSQL
 * schema and the SQLite file. `SQLITE_THREAD=false` keeps SQLite on the main thread.
 */
export const openStore = async (storeName, label) => {
  const dir = mkdtempSync(join(tmpdir(), `conveyor-${label}-`))
  const schema = `conveyor_${label.replace(/-/g, '_')}`
  const storeLayer = storeName === 'sqlite'
    ? (await import('../dist/sqlite.js')).layerWith({ filename: join(dir, `${label}.db`), thread: process.env.SQLITE_THREAD !== 'false' })
    : storeName === 'pg'
    ? (await import('../dist/pg.js')).layerWith({ url: Redacted.make(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'), schema, maxConnections: 10 })
    : Layer.provideMerge(JobClient.layer, JobStore.layerMemory)
  const runtime = ManagedRuntime.make(Layer.mergeAll(storeLayer, Logger.minimumLogLevel(LogLevel.Warning)))
  const run = (effect) => runtime.runPromise(effect)
  // A schema left by a run that did not finish starts empty.
  if (storeName === 'pg') await run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`TRUNCATE ${schema}.jobs`)))
  return {
    run,
    close: async () => {
      if (storeName === 'pg') await run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA ${schema} CASCADE`)))
      await runtime.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** A CPU profile written to `$PROFILE` between `start` and `stop`, when PROFILE is set and `active`. */
export const roundProfile = (active) => {
  const on = active && process.env.PROFILE !== undefined
  const session = new Session()
  return {
    start: async () => {
      if (!on) return
      session.connect()
      await session.post('Profiler.enable')
      // PROFILE_INTERVAL: microseconds between samples (V8's default is 1000)
      await session.post('Profiler.setSamplingInterval', { interval: Number(process.env.PROFILE_INTERVAL ?? 1000) })
      await session.post('Profiler.start')
    },
    stop: async () => {
      if (!on) return
      writeFileSync(process.env.PROFILE, JSON.stringify((await session.post('Profiler.stop')).profile))
      session.disconnect()
    }
  }
}
