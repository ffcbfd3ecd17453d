import { jobStoreSuite } from "./conformance/jobStoreSuite.js"
import { pgStoreLayer } from "./databases.js"

jobStoreSuite("postgresql", pgStoreLayer())
