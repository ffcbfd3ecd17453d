import { Layer } from "effect"
import { cliSuite } from "./cliSuite.js"
import { dropSchemaAfterwards, freshSchema, pgClientLayer, pgUrl } from "./databases.js"

cliSuite("PostgreSQL", () => {
  const schema = freshSchema("cli")
  return {
    env: { DATABASE_URL: pgUrl, CONVEYOR_PG_SCHEMA: schema },
    client: dropSchemaAfterwards(schema).pipe(Layer.provideMerge(pgClientLayer)),
    storeOptions: { schema }
  }
})
