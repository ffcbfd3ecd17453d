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

/**
 * Subscribe to a worker's events now; the returned function waits until each of `ids` has
 * finished, and answers their events in the order of `ids`. Unlike a count, it is not misled
 * by jobs that an earlier test left running on a shared worker.
 */
export const finishedJobsById = (worker: Worker.WorkerShape) =>
  Effect.map(PubSub.subscribe(worker.events), (events) => (ids: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const finished = new Map<string, Finished>()
      while (!ids.every((id) => finished.has(id))) {
        const event = yield* Queue.take(events)
        if (event._tag === "JobFinished") finished.set(event.job.id, event)
      }
      return ids.map((id) => finished.get(id)!)
    }))
