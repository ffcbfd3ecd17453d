#!/usr/bin/env node
// The `conveyor` command. Runs the compiled CLI when the package is built, else its TypeScript
// sources through tsx, so it works straight from a clone with no build step. tsx is also what
// lets `conveyor worker` import a worker module written in TypeScript.
import { existsSync } from "node:fs"
import { register } from "node:module"

const compiled = new URL("../dist/cli/main.js", import.meta.url)
let tsx = false
try {
  const api = await import("tsx/esm/api")
  api.register()
  tsx = true
} catch {
  // No tsx: compiled code and JavaScript worker modules only.
}
if (existsSync(compiled)) {
  await import(compiled.href)
} else if (tsx) {
  register("./source-hooks.js", import.meta.url)
  await import(new URL("../src/cli/main.ts", import.meta.url).href)
} else {
  console.error("conveyor: not built (run `npm run build`) and tsx is not installed")
  process.exitCode = 1
}
