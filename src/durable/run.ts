/**
 * The free functions of seed 004: `run`, `runOnce`, `sleep` and `thread` act on the job running
 * in the current async scope, so helpers deep in a call stack need no `ctx` passed down.
 */
import type { Duration } from '../time.js'
import { requireRun } from './current.js'
import type { StepOptions, ThreadContext, ThreadOptions } from './steps.js'

/** A durable step of the running job; see `JobContext.run`. */
export function run<T>(step: string | StepOptions, fn: () => T | Promise<T>): Promise<Awaited<T>> {
	return requireRun('run', 'Call it from inside a handler (or use ctx.run).').ctx.run(step, fn)
}

/** An at-most-once side effect of the running job; see `JobContext.runOnce`. */
export function runOnce<T>(key: string, fn: () => T | Promise<T>): Promise<Awaited<T>> {
	return requireRun('runOnce', 'Call it from inside a handler (or use ctx.runOnce).').ctx.runOnce(key, fn)
}

/** Durable sleep of the running job; see `JobContext.sleep`. */
export function sleep(duration: Duration): Promise<void> {
	return requireRun('sleep', 'Call it from inside a handler (or use ctx.sleep).').ctx.sleep(duration)
}

/** A step of the running job run in a worker thread; see `JobContext.thread`. */
export function thread<I, T>(
	step: string | ThreadOptions,
	fn: (input: I, context: ThreadContext) => T | Promise<T>,
	input: I,
): Promise<Awaited<T>> {
	return requireRun('thread', 'Call it from inside a handler (or use ctx.thread).').ctx.thread(
		step,
		fn,
		input,
	)
}
