import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import { Job, JobClient, JobContext, JobStore, Worker } from "conveyor"

// 1. A job: a stable persisted name and a payload Schema.
const SendInvoice = Job.make({
  name: "send_invoice",
  queue: "billing",
  payload: Schema.Struct({ invoiceId: Schema.String, email: Schema.String }),
  maxAttempts: 5,
  timeout: "30 seconds"
})

// 2. Its handler: an Effect; its requirements become the worker's.
const SendInvoiceHandler = SendInvoice.handler(({ email, invoiceId }) =>
  Effect.gen(function*() {
    const job = yield* JobContext
    yield* Effect.logInfo(`sending invoice ${invoiceId} to ${email} (attempt ${job.attempt})`)
  })
)

// 3. Enqueue: the payload is checked against its Schema before anything is stored.
const enqueueSome = Effect.gen(function*() {
  const client = yield* JobClient
  yield* client.enqueue(SendInvoice, { invoiceId: "inv_1", email: "ada@example.com" })
  yield* client.enqueue(SendInvoice, { invoiceId: "inv_2", email: "alan@example.com" }, { delay: "2 seconds" })
})

// 4. Run a worker: Ctrl-C drains in-flight jobs, then exits.
const StoreLive = JobClient.layer.pipe(Layer.provideMerge(JobStore.layerMemory))
const MainLive = Worker.layer({ handlers: [SendInvoiceHandler], concurrency: 8 }).pipe(
  Layer.merge(Layer.effectDiscard(enqueueSome)),
  Layer.provide(StoreLive)
)

Layer.launch(MainLive).pipe(NodeRuntime.runMain)
