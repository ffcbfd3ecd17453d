import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const src = (file: string) => fileURLToPath(new URL(`./src/${file}`, import.meta.url))

export default defineConfig({
  resolve: {
    // The package's own name resolves to its sources, as tsconfig `paths` does for tsc and tsx.
    alias: [
      { find: /^conveyor$/, replacement: src("index.ts") },
      { find: /^conveyor\/(.*)$/, replacement: src("$1.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts", "docs/snippets/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
