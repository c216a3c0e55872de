import type { StepOptions, ThreadContext, ThreadOptions } from './durable/steps.js'
import type { Duration } from './time.js'

/** What a handler receives besides its input. */
export interface JobContext {
	/** The id of the job being run. */
	readonly jobId: string
	/** The job's name. */
	readonly name: string
	/** This attempt's number: 1 on the first run, 2 on the first retry... */
	readonly attempt: number
	/** How many attempts the job may make in all. */
	readonly maxAttempts: number
	/** Retries so far (`attempt - 1`); seed 001's `retryCount`. */
	readonly retryCount: number
	/**
	 * Aborted when the attempt must stop: its timeout passed (`TimeoutError`), the job was
	 * cancelled (`CancelledError`), the lease was lost (`LeaseLostError`), or the queue is closing.
	 * Pass it to fetch, child processes and anything else that can be cancelled.
	 */
	readonly signal: AbortSignal
	/**
	 * Extends the lease now. Workers heartbeat on their own every third of the lease; call this only
	 * to say more (before a long synchronous stretch). Rejects with LeaseLostError if it is lost.
	 */
	heartbeat(): Promise<void>
	/** Writes a line to the job's log (kept with the job, shown by the dashboard) and the logger. */
	log(message: string, fields?: Record<string, unknown>): void
	/**
	 * A durable step: runs `fn` and stores its result; every later attempt, replay or restart of
	 * this job returns the stored result without running `fn` again. At-least-once: if the process
	 * dies while `fn` runs, it runs again. Step names should be unique within the job; repeated
	 * names are numbered in call order (`fetch`, `fetch#2`...). Options: `retry` and `backoff` (the
	 * step's own retries, in this attempt, before the job's), `timeout` of one try, `concurrency`
	 * (runs of this step at once in this process).
	 */
	run<T>(step: string | StepOptions, fn: () => T | Promise<T>): Promise<Awaited<T>>
	/**
	 * Durable sleep: the job leaves its worker slot and its lease (state `waiting`) and resumes at
	 * the wake time, in any process, even after every process restarted. The handler is replayed
	 * from the top on resume; its steps return their stored results.
	 */
	sleep(duration: Duration): Promise<void>
	/**
	 * Runs `fn(input)` in a worker thread, as a step (its result is stored). `fn` is serialised
	 * with `fn.toString()`: it must be self-contained, using only its input (a function that uses
	 * variables from around it fails with ThreadClosureError). Options add resource limits.
	 */
	thread<I, T>(
		step: string | ThreadOptions,
		fn: (input: I, context: ThreadContext) => T | Promise<T>,
		input: I,
	): Promise<Awaited<T>>
	/**
	 * An at-most-once side effect. The intent is stored before `fn` runs and the result after.
	 * An attempt that finds the intent without a result (the process died while `fn` ran) does not
	 * run `fn` again: it throws `StepInterruptedError` so the handler decides. If `fn` throws, spool
	 * takes that as "it did not happen", and a later attempt runs it again. No queue can give
	 * exactly-once side effects; this is the closest honest promise.
	 */
	runOnce<T>(key: string, fn: () => T | Promise<T>): Promise<Awaited<T>>
	/** Ends the attempt as a success with this output (seed 003). Later return values are ignored. */
	complete(output?: unknown): Promise<void>
	/** Ends the attempt as a failure; the job is retried if attempts are left (seed 003). */
	fail(reason: unknown): Promise<void>
	/** Ends the job as failed at once, with no retry: it goes to the dead letters (seed 003). */
	failFatal(reason: unknown): Promise<void>
}
