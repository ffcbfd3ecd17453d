/**
 * Every TypeScript block in the guides is code that tsc checks: each ```ts block is announced by
 * `<!-- snippet: path#region -->` and must equal that region of that file (or the whole file),
 * a file under docs/snippets/ or examples/, both of which tsconfig includes.
 */
import { existsSync, readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"

export const guides = [
  "docs/getting-started.md",
  "docs/defining-jobs.md",
  "docs/scoped-services.md",
  "docs/enqueueing.md",
  "docs/production.md",
  "docs/testing.md",
  "docs/migrating.md"
] as const

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), "utf8")

const markerPattern = /^\s*\/\/ #(end)?region\b.*$/

/** The lines of a region (or of the whole file, without region markers), dedented. */
export const snippet = (file: string, region: string | undefined): string => {
  const lines = read(file).split("\n")
  let body: Array<string>
  if (region === undefined) {
    body = lines.filter((line) => !markerPattern.test(line))
  } else {
    const start = lines.findIndex((line) => line.trim() === `// #region ${region}`)
    const end = lines.findIndex((line) => line.trim() === `// #endregion ${region}`)
    if (start < 0 || end < start) throw new Error(`${file} has no region "${region}"`)
    body = lines.slice(start + 1, end).filter((line) => !markerPattern.test(line))
  }
  const indent = Math.min(...body.filter((line) => line.trim() !== "").map((line) => line.length - line.trimStart().length))
  return body.map((line) => line.slice(indent)).join("\n").replace(/\n+$/, "") + "\n"
}

/** Each ```ts block with the snippet reference above it. */
export const tsBlocks = (markdown: string) =>
  [...markdown.matchAll(/(?:<!-- snippet: ([^ #]+)(?:#([\w-]+))? -->\n)?```ts\n([\s\S]*?)```/g)].map((match) => ({
    file: match[1],
    region: match[2],
    code: match[3]!
  }))

describe("guides", () => {
  const readme = read("README.md")

  for (const guide of guides) {
    it(`${guide}: every ts block is a type-checked snippet, and the README links the guide`, () => {
      expect(existsSync(new URL(`../${guide}`, import.meta.url))).toBe(true)
      expect(readme).toContain(`](${guide})`)
      for (const block of tsBlocks(read(guide))) {
        expect(block.file, `a ts block in ${guide} names no snippet:\n${block.code}`).toBeDefined()
        expect(block.file!, "snippets live where tsc looks").toMatch(/^(docs\/snippets|examples)\//)
        expect(block.code, `${guide} shows ${block.file}#${block.region ?? ""} as it is`).toBe(snippet(block.file!, block.region))
      }
    })
  }
})
