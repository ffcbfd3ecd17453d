import { jobStoreSuite } from "./conformance/jobStoreSuite.js"
import { sqliteStoreLayer } from "./databases.js"

jobStoreSuite("sqlite", sqliteStoreLayer())
