// Conveyor on SQLite, for the peer benchmark harness.
import { makeAdapter } from './conveyor-adapter.mjs'
const adapter = makeAdapter('sqlite')
export const { name, packages, profiles, setup, reset, enqueueOne, enqueueMany, startWorker, countUnfinished, teardown } = adapter
