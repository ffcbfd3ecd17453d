/**
 * Effect's metric registry as Prometheus text exposition (format 0.0.4): every metric in the
 * process, Conveyor's and the application's alike.
 *
 * Names follow OpenTelemetry's Prometheus mapping: dots become underscores, monotonic counters
 * end in `_total`, and metrics carrying a `unit="s"` label drop it and end in `_seconds`.
 */
import { Effect, Metric, MetricKeyType, type MetricPair, MetricState, Option } from "effect"

export const contentType = "text/plain; version=0.0.4; charset=utf-8"

const sanitizeName = (name: string) => {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned
}
const sanitizeLabel = (name: string) => {
  const cleaned = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned
}
const escapeLabelValue = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")
const escapeHelp = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const formatValue = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Infinity) return "+Inf"
  if (value === -Infinity) return "-Inf"
  return String(value)
}

type Labels = ReadonlyArray<readonly [string, string]>

const formatLabels = (labels: Labels): string =>
  labels.length === 0 ? "" : `{${labels.map(([key, value]) => `${key}="${escapeLabelValue(value)}"`).join(",")}}`

interface Family {
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram" | "summary"
  readonly help: string
  readonly lines: Array<string>
}

const suffixed = (name: string, suffix: string) => (name.endsWith(suffix) ? name : `${name}${suffix}`)

/** Render a registry snapshot. */
export const render = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const familyOf = (name: string, type: Family["type"], help: string) => {
    let family = families.get(name)
    if (family === undefined) families.set(name, family = { name, type, help, lines: [] })
    return family.type === type ? family : undefined
  }

  for (const { metricKey, metricState } of pairs) {
    let name = sanitizeName(metricKey.name)
    const labels: Array<readonly [string, string]> = []
    for (const label of metricKey.tags) {
      if (label.key === "unit") {
        if (label.value === "s") name = suffixed(name, "_seconds")
        continue
      }
      labels.push([sanitizeLabel(label.key), label.value])
    }
    const help = Option.getOrElse(metricKey.description, () => metricKey.name)
    const sample = (family: Family | undefined, sampleName: string, extra: Labels, value: number | bigint) =>
      family?.lines.push(`${sampleName}${formatLabels([...labels, ...extra])} ${formatValue(value)}`)

    if (MetricState.isCounterState(metricState)) {
      const monotonic = MetricKeyType.isCounterKey(metricKey.keyType) && metricKey.keyType.incremental
      if (monotonic) {
        const total = suffixed(name, "_total")
        const base = total.slice(0, -"_total".length)
        sample(familyOf(base, "counter", help), total, [], metricState.count)
      } else {
        sample(familyOf(name, "gauge", help), name, [], metricState.count)
      }
    } else if (MetricState.isGaugeState(metricState)) {
      sample(familyOf(name, "gauge", help), name, [], metricState.value)
    } else if (MetricState.isHistogramState(metricState)) {
      const family = familyOf(name, "histogram", help)
      // Effect's buckets are already cumulative.
      for (const [bound, count] of metricState.buckets) {
        if (bound === Infinity) continue
        sample(family, `${name}_bucket`, [["le", formatValue(bound)]], count)
      }
      sample(family, `${name}_bucket`, [["le", "+Inf"]], metricState.count)
      sample(family, `${name}_sum`, [], metricState.sum)
      sample(family, `${name}_count`, [], metricState.count)
    } else if (MetricState.isSummaryState(metricState)) {
      const family = familyOf(name, "summary", help)
      for (const [quantile, value] of metricState.quantiles) {
        if (Option.isSome(value)) sample(family, name, [["quantile", formatValue(quantile)]], value.value)
      }
      sample(family, `${name}_sum`, [], metricState.sum)
      sample(family, `${name}_count`, [], metricState.count)
    } else if (MetricState.isFrequencyState(metricState)) {
      const total = suffixed(name, "_total")
      const family = familyOf(total.slice(0, -"_total".length), "counter", help)
      for (const [key, count] of metricState.occurrences) sample(family, total, [["key", key]], count)
    }
  }

  const out: Array<string> = []
  for (const family of [...families.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (family.lines.length === 0) continue
    out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`, ...family.lines)
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}

/** Every metric in Effect's registry now, as Prometheus text. */
export const prometheusText: Effect.Effect<string> = Effect.map(Metric.snapshot, render)
