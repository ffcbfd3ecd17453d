/**
 * Turns of the event loop for runners that would otherwise never give it one.
 *
 * Effect resumes fibers on the microtask queue, and Node reads its sockets only once that queue
 * is empty. Runners that always find a next job (a buffer of claimed jobs that do no I/O) keep
 * it busy for as long as the buffer lasts: the answer to the next claim, settlements and
 * heartbeats then wait behind thousands of jobs, and each claim came back only once the runners
 * had run dry, measured. So a runner that finishes a job some milliseconds after the loop's last
 * turn waits for the next one before its next job; once every runner waits, the queue empties
 * and the loop reads its sockets before `setImmediate` lets them go on.
 */
import { Effect } from "effect"

export const makeEventLoopTurns = (everyMillis: number) => {
  let lastTurn = performance.now()
  let waiting: Array<() => void> = []
  const turn = () => {
    lastTurn = performance.now()
    const resume = waiting
    waiting = []
    for (const go of resume) go()
  }
  const nextTurn = Effect.async<void>((resume) => {
    const go = () => resume(Effect.void)
    if (waiting.push(go) === 1) setImmediate(turn)
    return Effect.sync(() => {
      const at = waiting.indexOf(go)
      if (at >= 0) waiting.splice(at, 1)
    })
  })
  return {
    /** Whether the loop has gone without a turn for long enough that a runner should wait for one. */
    due: (): boolean => performance.now() - lastTurn >= everyMillis,
    /** Wait for the loop's next turn, with any other runner waiting for it. */
    nextTurn
  } as const
}
