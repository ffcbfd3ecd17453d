/**
 * How the CLI prints: aligned tables for people, the API's JSON shapes with `--json`, and
 * progress on stderr only when it is a terminal (so pipes and logs stay clean).
 */
import { Console, DateTime, Effect, Logger, Schema } from "effect"

/**
 * Short commands log to stderr, so stdout carries only what they print (and stays valid JSON).
 * The worker swaps it for the telemetry logger.
 */
export const commandLogger = Logger.prettyLogger({ stderr: true })

/** Columns padded to their widest cell. */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd()
  return [line(headers), ...rows.map(line)].join("\n")
}

/** A value encoded with its Schema, as indented JSON on stdout. */
export const printJson = <A, I>(schema: Schema.Schema<A, I>, value: A) =>
  Effect.flatMap(Effect.orDie(Schema.encode(schema)(value)), (encoded) => Console.log(JSON.stringify(encoded, null, 2)))

export const time = (value: DateTime.Utc | null): string => (value === null ? "-" : DateTime.formatIso(value).replace(/\.\d{3}Z$/, "Z"))

/** One line of text, cut to `max` characters. */
export const firstLine = (text: string, max = 60): string => {
  const line = text.split("\n")[0] ?? ""
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

const isTerminal = () => process.stderr.isTTY === true

/** Overwrites one status line on a terminal; prints nothing elsewhere. */
export const progress = (text: string) =>
  Effect.sync(() => {
    if (isTerminal()) process.stderr.write(`\r\x1b[2K${text}`)
  })

/** Ends the status line, if one was drawn. */
export const progressDone = Effect.sync(() => {
  if (isTerminal()) process.stderr.write("\r\x1b[2K")
})
