/**
 * `job.waitFor(input | predicate)` and `pipe.waitFor(...)`: what each waits on, as a topic and a
 * way to read its events.
 */
import { ConfigError } from '../errors.js'
import { encodeJson } from '../json.js'
import { type Duration, parseDuration } from '../time.js'
import type { WaitForSpec } from './steps.js'

/** A pattern an event must contain (nested objects match by their keys), or a predicate. */
export type WaitPattern<T> = T extends readonly unknown[]
	? T
	: T extends object
		? { readonly [K in keyof T]?: WaitPattern<T[K]> }
		: T

/** Options of `waitFor`. */
export interface WaitForOptions {
	/** Give up after this long (measured from the first call, across replays) with a TimeoutError. */
	readonly timeout?: Duration
}

function common(
	match: unknown,
	options: WaitForOptions | undefined,
	what: string,
): { match: WaitForSpec<unknown>['match']; predicate?: (s: unknown) => boolean; timeoutMs?: number } {
	const timeoutMs =
		options?.timeout === undefined ? undefined : parseDuration(options.timeout, `${what} timeout`)
	if (typeof match === 'function') {
		return { match: null, predicate: match as (s: unknown) => boolean, timeoutMs }
	}
	if (match === undefined) {
		throw new ConfigError(
			`${what}.waitFor needs a pattern (an object the input must contain) or a predicate.`,
		)
	}
	return { match: encodeJson(match, `The pattern of ${what}.waitFor`), timeoutMs }
}

/** Waiting for a run of job `name` whose input matches to complete; resolves with its output. */
export function jobWaitSpec(name: string, match: unknown, options?: WaitForOptions): WaitForSpec<unknown> {
	const what = `job '${name}'`
	return {
		...common(match, options, what),
		topic: `job:${name}`,
		subject: (payload) => (payload as { input: unknown }).input,
		result: (payload) => (payload as { output: unknown }).output,
		what,
	}
}

/**
 * Waiting for a message on pipe `name` that matches; resolves with the message. A pipe's messages
 * are stored as runs of its internal job `jobName`, so a message is a completion of that job.
 */
export function pipeWaitSpec(
	name: string,
	jobName: string,
	match: unknown,
	options?: WaitForOptions,
): WaitForSpec<unknown> {
	return { ...jobWaitSpec(jobName, match, options), what: `pipe '${name}'` }
}
