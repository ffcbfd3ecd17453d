import { JobStore } from "conveyor"
import { jobStoreSuite } from "./conformance/jobStoreSuite.js"

jobStoreSuite("memory", JobStore.layerMemory)
