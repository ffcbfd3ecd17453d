import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"

describe("README", () => {
  it("shows the quick start exactly as examples/quickstart.ts (which tsc checks)", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
    const quickstart = readFileSync(new URL("../examples/quickstart.ts", import.meta.url), "utf8")
    const block = readme.split("## Quick start")[1]!.split("```ts\n")[1]!.split("```")[0]
    expect(block).toBe(quickstart)
  })

  it("shows the cron example exactly as examples/cron.ts (which tsc checks)", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
    const example = readFileSync(new URL("../examples/cron.ts", import.meta.url), "utf8")
    const block = readme.split("## Recurring jobs (cron)")[1]!.split("```ts\n")[1]!.split("```")[0]
    expect(block).toBe(example)
  })

  it("names the commands that package.json runs", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))
    expect(readme).toContain("npm install && npm start")
    expect(readme).toContain("npm test")
    expect(pkg.scripts.test).toContain("vitest run")
    expect(pkg.scripts.test).toContain("tsc --noEmit")
  })
})
