import { Context, Effect, Layer, PubSub, Queue, type Scope } from "effect"
import { Worker } from "conveyor"

type Finished = Worker.WorkerEvent & { readonly _tag: "JobFinished" }

/** Build a worker layer now and keep it running for the rest of the scope. */
export const start = <E, R>(layer: Layer.Layer<Worker.Worker, E, R>): Effect.Effect<Worker.WorkerShape, E, R | Scope.Scope> =>
  Effect.map(Layer.build(layer), Context.get(Worker.Worker))

/**
 * Subscribe to a worker's events now; the returned effect waits for `count` finished jobs.
 * Waiting on events, never on sleeps, keeps tests exact under TestClock.
 */
export const finishedJobs = (worker: Worker.WorkerShape, count: number) =>
  Effect.map(PubSub.subscribe(worker.events), (events) =>
    Effect.gen(function*() {
      const finished: Array<Finished> = []
      while (finished.length < count) {
        const event = yield* Queue.take(events)
        if (event._tag === "JobFinished") finished.push(event)
      }
      return finished
    }))
