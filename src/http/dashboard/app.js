// The Conveyor dashboard: plain browser code over the admin JSON API. Everything shown is set
// with textContent (never innerHTML), so job data cannot inject markup.
"use strict"

const refreshEvery = 3000
const pageSize = 25
const state = { token: null, offset: 0, filters: {}, selected: null, timer: null }

const $ = (id) => document.getElementById(id)

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value)
    else node.setAttribute(key, value)
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")))
  return node
}

// The token comes once in the URL fragment (never sent to the server) or from the sign-in form,
// and is kept for this tab only.
const loadToken = () => {
  const fragment = new URLSearchParams(location.hash.slice(1))
  if (fragment.has("token")) {
    sessionStorage.setItem("conveyor-token", fragment.get("token"))
    history.replaceState(null, "", location.pathname + location.search)
  }
  state.token = sessionStorage.getItem("conveyor-token")
}

class Unauthorized extends Error {}

const api = async (path, options = {}) => {
  const headers = { accept: "application/json" }
  if (state.token) headers.authorization = `Bearer ${state.token}`
  if (options.body !== undefined) headers["content-type"] = "application/json"
  const response = await fetch(path, {
    method: options.method ?? "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body)
  })
  if (response.status === 401) throw new Unauthorized("a valid admin token is needed")
  const body = await response.json().catch(() => null)
  if (!response.ok) throw new Error(body?.message ?? body?.error ?? `${response.status} ${response.statusText}`)
  return body
}

const say = (text, isError = false) => {
  const message = $("message")
  message.textContent = text
  message.className = isError ? "error" : ""
}

const time = (iso) => (iso ? new Date(iso).toLocaleString() : "")
const relative = (iso) => {
  if (!iso) return ""
  const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000)
  const abs = Math.abs(seconds)
  const text = abs < 60 ? `${abs}s` : abs < 3600 ? `${Math.round(abs / 60)}m` : `${Math.round(abs / 3600)}h`
  return seconds >= 0 ? `in ${text}` : `${text} ago`
}

const stateBadge = (value) => el("span", { class: `state state-${value}` }, value === "discarded" ? "failed" : value)

// --- overview and chart ----------------------------------------------------------------------

const renderStats = (stats) => {
  $("completed").textContent = stats.completed
  $("discarded").textContent = stats.discarded
  $("failure-rate").textContent = stats.failureRate === null ? "–" : `${(stats.failureRate * 100).toFixed(1)}%`
  $("running").textContent = stats.totals.running
  $("waiting").textContent = stats.totals.available + stats.totals.scheduled + stats.totals.retryable
  const svg = $("chart")
  svg.replaceChildren()
  const buckets = stats.throughput
  const max = Math.max(1, ...buckets.map((b) => b.completed + b.discarded))
  const width = 600 / Math.max(1, buckets.length)
  buckets.forEach((b, i) => {
    const okHeight = (b.completed / max) * 78
    const badHeight = (b.discarded / max) * 78
    const x = (i * width).toFixed(2)
    const bar = (cls, y, height) => {
      const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect")
      rect.setAttribute("class", cls)
      rect.setAttribute("x", x)
      rect.setAttribute("y", y.toFixed(2))
      rect.setAttribute("width", Math.max(1, width - 1).toFixed(2))
      rect.setAttribute("height", height.toFixed(2))
      const title = document.createElementNS("http://www.w3.org/2000/svg", "title")
      title.textContent = `${time(b.at)}: ${b.completed} completed, ${b.discarded} failed`
      rect.append(title)
      svg.append(rect)
    }
    bar("ok", 80 - okHeight, okHeight)
    bar("bad", 80 - okHeight - badHeight, badHeight)
  })
}

// --- queues ----------------------------------------------------------------------------------

const renderQueues = (queues) => {
  const rows = queues.map((q) =>
    el(
      "tr",
      { "data-queue": q.queue },
      el("td", {}, q.queue, q.paused ? el("span", { class: "paused" }, " paused") : ""),
      ...["scheduled", "available", "running", "retryable", "completed", "cancelled", "discarded"].map((s) =>
        el("td", {}, q.counts[s])
      ),
      el(
        "td",
        {},
        el("button", {
          type: "button",
          onclick: () => act(`/api/queues/${encodeURIComponent(q.queue)}/${q.paused ? "resume" : "pause"}`, `${q.paused ? "resumed" : "paused"} ${q.queue}`)
        }, q.paused ? "Resume" : "Pause")
      )
    )
  )
  $("queue-rows").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "9", class: "muted" }, "no queues yet"))]))
}

// --- cron ------------------------------------------------------------------------------------

const renderCron = (schedules) => {
  const rows = schedules.map((s) =>
    el(
      "tr",
      {},
      el("td", {}, s.schedule),
      el("td", {}, s.cron === null ? "" : `${s.cron}${s.timeZone && s.timeZone !== "UTC" ? ` (${s.timeZone})` : ""}`),
      el("td", {}, s.job ?? ""),
      el("td", { title: time(s.lastTick) }, relative(s.lastTick)),
      el("td", { title: time(s.nextRun) }, s.nextRun ? `${time(s.nextRun)} (${relative(s.nextRun)})` : "unknown")
    )
  )
  $("cron-rows").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "5", class: "muted" }, "no cron schedules"))]))
}

// --- jobs ------------------------------------------------------------------------------------

const lastError = (job) => (job.errors.length ? job.errors[job.errors.length - 1].message.split("\n")[0] : "")

const jobActions = (job) => {
  const buttons = []
  if (["discarded", "cancelled", "retryable", "scheduled"].includes(job.state)) {
    buttons.push(el("button", { type: "button", "data-action": "retry", onclick: (e) => { e.stopPropagation(); act(`/api/jobs/${job.id}/retry`, `job ${job.id} queued again`) } }, "Retry"))
  }
  if (["scheduled", "available", "running", "retryable"].includes(job.state) && !job.cancelRequested) {
    buttons.push(el("button", { type: "button", "data-action": "cancel", onclick: (e) => { e.stopPropagation(); act(`/api/jobs/${job.id}/cancel`, `job ${job.id} cancelled`) } }, "Cancel"))
  }
  return buttons
}

const renderJobs = (page) => {
  const rows = page.jobs.map((job) =>
    el(
      "tr",
      { class: "job", "data-job-id": job.id, "data-state": job.state, onclick: () => select(job.id) },
      el("td", {}, job.id),
      el("td", {}, job.name),
      el("td", {}, job.queue),
      el("td", {}, stateBadge(job.state), job.cancelRequested ? " (cancelling)" : ""),
      el("td", {}, `${job.attempt}/${job.maxAttempts}`),
      el("td", { title: time(job.runAt) }, relative(job.runAt)),
      el("td", { title: time(job.finishedAt) }, relative(job.finishedAt)),
      el("td", { class: "error" }, lastError(job)),
      el("td", {}, ...jobActions(job))
    )
  )
  $("job-rows").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "9", class: "muted" }, "no jobs match"))]))
  $("page").textContent = page.jobs.length ? `${page.offset + 1}–${page.offset + page.jobs.length}` : ""
  $("prev").disabled = page.offset === 0
  $("next").disabled = !page.hasMore
}

const renderDetail = (job) => {
  $("detail").hidden = false
  $("detail-id").textContent = job.id
  $("detail-actions").replaceChildren(...jobActions(job))
  const fields = [
    ["job", job.name], ["queue", job.queue], ["state", job.state], ["attempt", `${job.attempt} of ${job.maxAttempts}`],
    ["priority", job.priority], ["trigger", job.trigger], ["tenant", job.tenantId ?? ""], ["worker", job.workerId ?? ""],
    ["enqueued", time(job.enqueuedAt)], ["run at", time(job.runAt)], ["last attempt", time(job.attemptedAt)],
    ["finished", time(job.finishedAt)], ["cancel requested", job.cancelRequested ? "yes" : "no"],
    ["metadata", JSON.stringify(job.metadata)]
  ]
  $("detail-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))
  $("detail-payload").textContent = job.payloadHidden ? "(payloads are hidden by configuration)" : JSON.stringify(job.payload, null, 2)
  $("detail-errors").replaceChildren(
    ...(job.errors.length
      ? job.errors.map((e) => el("li", {}, el("b", {}, `attempt ${e.attempt}, ${e.kind}, ${time(e.at)}`), el("pre", {}, e.message)))
      : [el("li", { class: "muted" }, "no errors")])
  )
}

const select = (id) => {
  state.selected = id
  refresh()
}

// --- actions and refresh ---------------------------------------------------------------------

const act = async (path, done) => {
  try {
    await api(path, { method: "POST" })
    say(done)
  } catch (error) {
    onError(error)
  }
  refresh()
}

const onError = (error) => {
  if (error instanceof Unauthorized) {
    $("token-form").hidden = false
    say(error.message, true)
  } else {
    say(error.message, true)
  }
}

const jobQuery = () => {
  const params = new URLSearchParams({ limit: String(pageSize), offset: String(state.offset) })
  for (const [key, value] of Object.entries(state.filters)) if (value) params.set(key, value)
  return params.toString()
}

const refresh = async () => {
  clearTimeout(state.timer)
  try {
    const [stats, queues, cron, page] = await Promise.all([
      api("/api/stats"),
      api("/api/queues"),
      api("/api/cron"),
      api(`/api/jobs?${jobQuery()}`)
    ])
    renderStats(stats)
    renderQueues(queues)
    renderCron(cron)
    renderJobs(page)
    if (state.selected !== null) renderDetail(await api(`/api/jobs/${encodeURIComponent(state.selected)}`))
    $("token-form").hidden = true
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`
  } catch (error) {
    onError(error)
  }
  if ($("live").checked) state.timer = setTimeout(refresh, refreshEvery)
}

const start = () => {
  loadToken()
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault()
    state.token = $("token").value
    sessionStorage.setItem("conveyor-token", state.token)
    say("")
    refresh()
  })
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault()
    state.filters = { queue: $("filter-queue").value.trim(), state: $("filter-state").value, name: $("filter-name").value.trim() }
    state.offset = 0
    refresh()
  })
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - pageSize); refresh() })
  $("next").addEventListener("click", () => { state.offset += pageSize; refresh() })
  $("detail-close").addEventListener("click", () => { state.selected = null; $("detail").hidden = true })
  $("live").addEventListener("change", () => refresh())
  refresh()
}

start()
