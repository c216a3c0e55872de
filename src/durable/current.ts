/**
 * The job running in the current async scope. The free functions (`run`, `sleep`, `thread`) and
 * a job definition's `run`/`start`/`waitFor` called inside a handler find their job here, so
 * helpers deep in a call stack need no `ctx` passed down.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { JobContext } from '../context.js'
import { SpoolError } from '../errors.js'
import type { DurableRun } from './steps.js'

/** A running job: its public context and its durable runtime. Internal. */
export interface ActiveRun {
	readonly ctx: JobContext
	readonly durable: () => DurableRun
}

/** The job running in the current async scope. */
export const currentRun = new AsyncLocalStorage<ActiveRun>()

/** The running job, or a clear error naming what was called outside a handler. */
export function requireRun(what: string, instead: string): ActiveRun {
	const active = currentRun.getStore()
	if (!active) {
		throw new SpoolError('SPOOL_CONFIG', `${what} was called outside a job handler. ${instead}`)
	}
	return active
}
