/**
 * Every error spool throws is a named class with a stable string `code`, so callers can branch on
 * `err.code` (or `instanceof`) instead of parsing messages. Each message says what went wrong and
 * what to do about it.
 */

/** The stable codes of spool's errors. */
export type SpoolErrorCode =
	| 'SPOOL_FATAL'
	| 'SPOOL_TIMEOUT'
	| 'SPOOL_CANCELLED'
	| 'SPOOL_STEP_INTERRUPTED'
	| 'SPOOL_NON_DETERMINISM'
	| 'SPOOL_VALIDATION'
	| 'SPOOL_LEASE_LOST'
	| 'SPOOL_UNKNOWN_JOB'
	| 'SPOOL_SERIALIZATION'
	| 'SPOOL_STORAGE_CORRUPT'
	| 'SPOOL_STORAGE_FOREIGN'
	| 'SPOOL_STORAGE_UNAVAILABLE'
	| 'SPOOL_QUEUE_CLOSED'
	| 'SPOOL_CONFIG'
	| 'SPOOL_JOB_FAILED'
	| 'SPOOL_HANDLER_THREW'
	| 'SPOOL_NOT_FOUND'
	| 'SPOOL_THROTTLED'
	| 'SPOOL_THREAD_CLOSURE'

/** The base class of every error spool throws. */
export class SpoolError extends Error {
	/** A stable identifier of the kind of error. */
	readonly code: SpoolErrorCode

	constructor(code: SpoolErrorCode, message: string, options?: { cause?: unknown }) {
		super(message, options)
		this.code = code
		this.name = new.target.name
	}
}

/**
 * Throw it from a handler (or call `ctx.failFatal`) to fail the job at once, with no retry:
 * the job goes to the dead letters.
 */
export class FatalError extends SpoolError {
	constructor(message: string, options?: { cause?: unknown }) {
		super('SPOOL_FATAL', message, options)
	}
}

/** An attempt or a step ran past its `timeout`. The attempt fails and may be retried. */
export class TimeoutError extends SpoolError {
	/** The limit that was passed, in milliseconds. */
	readonly timeoutMs: number
	constructor(message: string, timeoutMs: number) {
		super('SPOOL_TIMEOUT', message)
		this.timeoutMs = timeoutMs
	}
}

/** The job was cancelled (by `queue.cancel` or `job.cancel`) while it ran or waited. */
export class CancelledError extends SpoolError {
	constructor(message = 'The job was cancelled.') {
		super('SPOOL_CANCELLED', message)
	}
}

/**
 * `ctx.runOnce(key, fn)` found that an earlier attempt recorded its intent to run `fn` but no
 * outcome: `fn` may or may not have run. spool will not run it again (at-most-once); the handler
 * decides what to do, for example check the side effect and carry on.
 */
export class StepInterruptedError extends SpoolError {
	/** The `runOnce` key whose outcome is unknown. */
	readonly key: string
	constructor(key: string) {
		super(
			'SPOOL_STEP_INTERRUPTED',
			`runOnce('${key}') was interrupted in an earlier attempt: its side effect may or may not have happened, and spool will not run it twice. Catch StepInterruptedError to check and recover, or let the job fail.`,
		)
		this.key = key
	}
}

/** A replay met a different step where a recorded one stood: the handler is not deterministic. */
export class NonDeterminismError extends SpoolError {
	constructor(message: string) {
		super('SPOOL_NON_DETERMINISM', message)
	}
}

/**
 * A `thread` function used a name that does not exist in its worker thread: the function is
 * serialised (`fn.toString()`) and rebuilt there, so it cannot see variables, imports or functions
 * from the code around it. Pass what it needs through its input.
 */
export class ThreadClosureError extends SpoolError {
	constructor(name: string, detail: string) {
		super(
			'SPOOL_THREAD_CLOSURE',
			`thread '${name}': ${detail} inside the worker thread. A thread function is serialised (fn.toString()) and runs in another thread, so it cannot use variables, imports or functions from the code around it: pass what it needs through its input, and import modules inside it with await import().`,
		)
	}
}

/** One problem found by a standard-schema validator. */
export interface ValidationIssue {
	/** Where the bad value is, e.g. `to` or `items.2.price`; empty for the root. */
	readonly path: string
	/** What is wrong with it. */
	readonly message: string
}

/** Input or output did not match its schema. Nothing was stored. */
export class ValidationError extends SpoolError {
	/** Every problem the schema reported. */
	readonly issues: readonly ValidationIssue[]
	constructor(what: string, issues: readonly ValidationIssue[]) {
		const list = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')
		super('SPOOL_VALIDATION', `${what} is invalid: ${list}`)
		this.issues = issues
	}
}

/**
 * This worker no longer holds the job's lease (it expired, or the job was cancelled or taken over):
 * its outcome was not recorded. The handler's `ctx.signal` is aborted with this error.
 */
export class LeaseLostError extends SpoolError {
	constructor(jobId: string, detail = 'its lease expired or it was taken over by another worker') {
		super('SPOOL_LEASE_LOST', `Job ${jobId} is no longer held by this worker: ${detail}.`)
	}
}

/** A job name that no definition or handler was registered for. */
export class UnknownJobError extends SpoolError {
	constructor(name: string, known: readonly string[]) {
		super(
			'SPOOL_UNKNOWN_JOB',
			`No job named '${name}' is registered with this queue. Known names: ${known.length ? known.map((k) => `'${k}'`).join(', ') : '(none)'}. Pass it in createQueue({ jobs }).`,
		)
	}
}

/** A value that JSON cannot hold faithfully (a function, a BigInt, a cycle, undefined...). */
export class SerializationError extends SpoolError {
	constructor(message: string, options?: { cause?: unknown }) {
		super('SPOOL_SERIALIZATION', message, options)
	}
}

/** The storage's file or database is damaged. Nothing was written to it. */
export class StorageCorruptError extends SpoolError {
	constructor(message: string, options?: { cause?: unknown }) {
		super('SPOOL_STORAGE_CORRUPT', message, options)
	}
}

/** The storage's file or database belongs to something else. Nothing was written to it. */
export class StorageForeignError extends SpoolError {
	constructor(message: string) {
		super('SPOOL_STORAGE_FOREIGN', message)
	}
}

/** The storage cannot be reached right now (a dropped connection, a locked file). Retry later. */
export class StorageUnavailableError extends SpoolError {
	constructor(message: string, options?: { cause?: unknown }) {
		super('SPOOL_STORAGE_UNAVAILABLE', message, options)
	}
}

/** The queue was closed; it accepts no more work. */
export class QueueClosedError extends SpoolError {
	constructor(message = 'The queue is closed: create a new one to enqueue or run jobs.') {
		super('SPOOL_QUEUE_CLOSED', message)
	}
}

/** A bad option given to createJob, createQueue or a storage. Thrown at definition time. */
export class ConfigError extends SpoolError {
	constructor(message: string) {
		super('SPOOL_CONFIG', message)
	}
}

/** No job with that id exists (it may have been pruned after its retention period). */
export class JobNotFoundError extends SpoolError {
	constructor(id: string) {
		super(
			'SPOOL_NOT_FOUND',
			`No job with id '${id}' exists (finished jobs are pruned after their retention).`,
		)
	}
}

/** `job.run()` rejects with this when the job ended dead; `cause` is its last error. */
export class JobFailedError extends SpoolError {
	/** The id of the job that failed. */
	readonly jobId: string
	/** How many attempts were made. */
	readonly attempts: number
	constructor(jobId: string, name: string, attempts: number, cause: unknown) {
		const why = cause instanceof Error ? cause.message : String(cause)
		super('SPOOL_JOB_FAILED', `Job '${name}' (${jobId}) failed after ${attempts} attempt(s): ${why}`, {
			cause,
		})
		this.jobId = jobId
		this.attempts = attempts
	}
}

/** `job.run()` of a trigger that its throttle (mode `discard`) dropped: the job was not enqueued. */
export class ThrottledError extends SpoolError {
	/** The throttle's id. */
	readonly throttleId: string
	constructor(name: string, throttleId: string) {
		super(
			'SPOOL_THROTTLED',
			`Job '${name}' was not enqueued: throttle '${throttleId}' is over its rate (mode 'discard' drops such triggers; use mode 'queue' to delay them instead).`,
		)
		this.throttleId = throttleId
	}
}

/**
 * A handler threw something that is not an Error (a string, null, a plain object). spool wraps it
 * so that it is recorded readably; `thrown` keeps the original value.
 */
export class NonErrorThrownError extends SpoolError {
	/** The value the handler threw. */
	readonly thrown: unknown
	constructor(thrown: unknown) {
		super('SPOOL_HANDLER_THREW', `The handler threw a non-Error value: ${describeThrown(thrown)}`)
		this.thrown = thrown
	}
}

function describeThrown(value: unknown): string {
	if (value === null) return 'null'
	if (value === undefined) return 'undefined'
	if (typeof value === 'string') return JSON.stringify(value)
	if (typeof value === 'object') {
		try {
			return JSON.stringify(value) ?? String(value)
		} catch {
			return Object.prototype.toString.call(value)
		}
	}
	return String(value)
}

/** Turns anything thrown into an Error, keeping Errors as they are. */
export function toError(thrown: unknown): Error {
	return thrown instanceof Error ? thrown : new NonErrorThrownError(thrown)
}
