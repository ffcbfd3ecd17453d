import { Either } from "effect"
import { InvalidName } from "../Errors.js"

/**
 * The one pattern for queue and job names. Names are stored and shown, never spliced into SQL,
 * but a narrow pattern keeps them safe in URLs, CLI arguments, metric labels and channel names.
 */
export const namePattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/

export const isValidName = (name: string): boolean => namePattern.test(name)

/** The name, or why it is refused; an `Either`, so also an effect for callers that `yield*` it. */
export const validateName = (kind: "queue" | "job", name: string): Either.Either<string, InvalidName> =>
  isValidName(name) ? Either.right(name) : Either.left(new InvalidName({ kind, name }))
