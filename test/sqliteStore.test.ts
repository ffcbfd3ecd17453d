import { jobStoreSuite } from "./conformance/jobStoreSuite.js"
import { sqliteStoreLayer } from "./databases.js"

jobStoreSuite("sqlite", sqliteStoreLayer())
jobStoreSuite("sqlite, connection on the main thread", sqliteStoreLayer(undefined, { thread: false }))
