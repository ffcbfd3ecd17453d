// Module resolution hooks for running from a clone (no `dist/`): `conveyor` and `conveyor/<name>`
// resolve to the TypeScript sources, as tsconfig `paths` do for tsc, so a worker module and the
// CLI share one copy of the library.
const sources = new URL("../src/", import.meta.url)

export async function resolve(specifier, context, nextResolve) {
  const match = /^conveyor(?:\/([A-Za-z0-9_-]+))?$/.exec(specifier)
  if (match === null) return nextResolve(specifier, context)
  return nextResolve(new URL(`${match[1] ?? "index"}.ts`, sources).href, context)
}
