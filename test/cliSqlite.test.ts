import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect, Layer } from "effect"
import { cliSuite } from "./cliSuite.js"
import { freshSqliteFile, removeSqliteFile } from "./databases.js"

cliSuite("SQLite", () => {
  const file = freshSqliteFile("cli")
  return {
    env: { DATABASE_URL: `sqlite:${file}` },
    client: SqliteClient.layer({ filename: file }).pipe(
      Layer.merge(Layer.scopedDiscard(Effect.addFinalizer(() => Effect.sync(() => removeSqliteFile(file)))))
    ),
    storeOptions: {}
  }
})
