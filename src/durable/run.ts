/**
 * The free functions of seed 004: `run(name, fn)` and `runOnce(key, fn)` act on the job running in
 * the current async scope, so helpers deep in a call stack need no `ctx` passed down.
 */
import { SpoolError } from '../errors.js'
import { currentJob } from '../worker/executor.js'

function context(what: string) {
	const ctx = currentJob.getStore()
	if (!ctx) {
		throw new SpoolError(
			'SPOOL_CONFIG',
			`${what} was called outside a job handler. Call it from inside a handler (or use ctx.${what}).`,
		)
	}
	return ctx
}

/** A durable step of the running job; see `JobContext.run`. */
export function run<T>(name: string, fn: () => T | Promise<T>): Promise<Awaited<T>> {
	return context('run').run(name, fn)
}

/** An at-most-once side effect of the running job; see `JobContext.runOnce`. */
export function runOnce<T>(key: string, fn: () => T | Promise<T>): Promise<Awaited<T>> {
	return context('runOnce').runOnce(key, fn)
}
