/**
 * createJob: a job definition is a name, schemas, options and a handler. It is plain data plus
 * code; `createQueue` binds it to a storage and a worker.
 */
import type { JobContext } from './context.js'
import { requireRun } from './durable/current.js'
import { jobWaitSpec, type WaitForOptions, type WaitPattern } from './durable/wait.js'
import { ConfigError } from './errors.js'
import { type BackoffOption, type ResolvedBackoff, resolveBackoff } from './flow/backoff.js'
import { type CronOption, type ResolvedCron, resolveCronOption } from './flow/cron.js'
import {
	type ConcurrencyOption,
	type ConcurrencySpec,
	type DebounceOption,
	type DebounceSpec,
	resolveConcurrency,
	resolveDebounce,
	resolveThrottle,
	type ThrottleOption,
	type ThrottleSpec,
} from './flow/limits.js'
import { isTrigger, type Trigger } from './flow/trigger.js'
import type { EnqueueOptions, InputArgs } from './queue.js'
import { isStandardSchema, type StandardSchemaV1 } from './schema.js'
import { type Duration, parseDuration } from './time.js'

/** How a run ended, as `onSettled` sees it. */
export type SettledResult<Out> =
	| { readonly output: Out }
	| { readonly failure: Error }
	| { readonly cancel: Error }

/** Lifecycle hooks (seed 004). They run in the process that runs the job; a hook that throws is logged, never fails the job. */
export interface JobHooks<In, Out> {
	/** The job was enqueued (runs in the enqueuing process). */
	readonly onTrigger?: (input: In) => void | Promise<void>
	/** An attempt starts. */
	readonly onStart?: (input: In) => void | Promise<void>
	/** The job completed. */
	readonly onSuccess?: (input: In, output: Out) => void | Promise<void>
	/** The job failed for good (dead: no attempt left, or a fatal error). */
	readonly onFailure?: (input: In, reason: Error) => void | Promise<void>
	/** An attempt failed (it may be retried). */
	readonly onError?: (input: In, reason: Error) => void | Promise<void>
	/** The job was cancelled while this process ran it. */
	readonly onCancel?: (input: In, reason: Error) => void | Promise<void>
	/** The job completed, failed for good, or was cancelled. */
	readonly onSettled?: (input: In, result: SettledResult<Out>) => void | Promise<void>
}

/** How long finished jobs are kept before pruning. `0` for completed deletes them at completion. */
export interface Retention {
	readonly completed?: Duration
	readonly cancelled?: Duration
	readonly dead?: Duration
}

/** The options of `createJob`, besides the schemas. */
export interface JobOptions<Name extends string, In, Out> extends JobHooks<In, Out> {
	/** The job's unique name: what is stored, and what `queue.enqueue(name, ...)` takes. */
	readonly name: Name
	/** Retries after the first attempt, or a function of the input. Default 3. */
	readonly retry?: number | ((input: In) => number)
	/** The wait between retries. Default: 1s doubling to at most 1h, ±20% jitter. */
	readonly backoff?: BackoffOption<In>
	/** The longest one attempt may run; past it `ctx.signal` aborts and the attempt fails. */
	readonly timeout?: Duration
	/** Lower runs first. Default 0; an enqueue option overrides it. */
	readonly priority?: number
	/** How long a claim holds the job without a heartbeat. Default 30s. */
	readonly lease?: Duration
	/** How long finished jobs of this name are kept. */
	readonly retention?: Retention
	/**
	 * How many run at once (a number), how many start per period (`'2 per 5 minutes'`), a config
	 * with a shared `id`, or a function of the input (per-key limits: one per user at a time).
	 * Counted in the storage, so the limit holds across every process sharing it.
	 */
	readonly concurrency?: ConcurrencyOption<In>
	/** Drops (`discard`) or delays (`queue`) triggers over a rate. Applied when enqueued. */
	readonly throttle?: ThrottleOption<In>
	/** Waits for a quiet period, running once with the latest input (seed 004's leading/trailing modes). */
	readonly debounce?: DebounceOption<In>
	/** Start this job from pipes and other jobs: `[pipe.into(fn), otherJob.into(fn)]`. */
	readonly trigger?: readonly Trigger<NoInfer<In>>[]
	/** Start this job on a schedule: `'*\/5 * * * *'`, or `{ pattern, timezone, catchUp, input }`. */
	readonly cron?: CronOption<NoInfer<In>>
}

/** A job handler: takes the input, returns the output. */
export type JobHandler<In, Out> = (input: In, ctx: JobContext) => Out | Promise<Out>

/** The resolved definition the runtime works with. Not part of the typed surface. */
export interface RuntimeJob {
	readonly name: string
	readonly inputSchema: StandardSchemaV1 | undefined
	readonly outputSchema: StandardSchemaV1 | undefined
	readonly retries: (input: unknown) => number
	readonly backoff: ResolvedBackoff<unknown>
	readonly timeoutMs: number | undefined
	readonly priority: number
	readonly leaseMs: number | undefined
	readonly retention: Retention | undefined
	readonly hooks: JobHooks<unknown, unknown>
	readonly handler: JobHandler<unknown, unknown>
	readonly concurrency: ((input: unknown) => ConcurrencySpec | null) | null
	readonly throttle: ((input: unknown) => ThrottleSpec | null) | null
	readonly debounce: ((input: unknown) => DebounceSpec | null) | null
	readonly triggers: readonly Trigger<unknown>[]
	readonly cron: ResolvedCron | null
}

/**
 * A job definition. `Raw` is what enqueuing takes (the schema's input type), `In` what the
 * handler receives (the schema's output type), `Out` what a run resolves with.
 */
export interface JobDefinition<Name extends string = string, Raw = unknown, In = unknown, Out = unknown> {
	readonly kind: 'spool.job'
	readonly name: Name
	/** The runtime form; internal. */
	readonly '~runtime': RuntimeJob
	/** Carries the types only; never set at run time. */
	readonly '~types'?: { readonly raw: Raw; readonly input: In; readonly output: Out }
	/**
	 * A trigger for another job's `trigger` list: each successful run of this job starts that job
	 * once, with `map(output)` as its input (the output itself without `map`).
	 */
	into<T = Out>(map?: (output: Out) => T): Trigger<T>
	/**
	 * Inside another job's handler: starts this job as a child (once, under an id derived from the
	 * parent's id and the call's position, so replays never start it twice), suspends the parent
	 * without holding a slot, and resolves with the child's output (or throws its final error).
	 * Several in `Promise.all` run in parallel. Outside a handler, use `queue.jobs.x.run`.
	 */
	run(...args: InputArgs<Raw, EnqueueOptions>): Promise<Out>
	/** Inside a handler: starts this job as a child, once across replays, without waiting. Resolves with its id. */
	start(...args: InputArgs<Raw, EnqueueOptions>): Promise<string>
	/**
	 * Inside a handler: waits, suspended, until a run of this job whose input contains `match` (or
	 * satisfies the predicate) completes after the wait began; resolves with its output.
	 */
	waitFor(match: WaitPattern<In> | ((input: In) => boolean), options?: WaitForOptions): Promise<Out>
}

type In<S> = StandardSchemaV1.InferInput<S & StandardSchemaV1>
type Out<S> = StandardSchemaV1.InferOutput<S & StandardSchemaV1>

/** Define a job with an input and an output schema. */
export function createJob<const Name extends string, I extends StandardSchemaV1, O extends StandardSchemaV1>(
	options: JobOptions<Name, Out<I>, Out<O>> & { readonly input: I; readonly output: O },
	handler: JobHandler<Out<I>, In<O>>,
): JobDefinition<Name, In<I>, Out<I>, Out<O>>
/** Define a job with an input schema. */
export function createJob<const Name extends string, I extends StandardSchemaV1, R>(
	options: JobOptions<Name, Out<I>, Awaited<R>> & { readonly input: I; readonly output?: undefined },
	handler: (input: Out<I>, ctx: JobContext) => R,
): JobDefinition<Name, In<I>, Out<I>, Awaited<R>>
/** Define a job with an output schema; its input type comes from the handler's parameter. */
export function createJob<const Name extends string, O extends StandardSchemaV1, P = void>(
	options: JobOptions<Name, P, Out<O>> & { readonly input?: undefined; readonly output: O },
	handler: JobHandler<P, In<O>>,
): JobDefinition<Name, P, P, Out<O>>
/** Define a job; its input type comes from the handler's parameter (none: no input). */
export function createJob<const Name extends string, R, P = void>(
	options: JobOptions<Name, P, Awaited<R>> & { readonly input?: undefined; readonly output?: undefined },
	handler: (input: P, ctx: JobContext) => R,
): JobDefinition<Name, P, P, Awaited<R>>
export function createJob(
	options: JobOptions<string, unknown, unknown> & { readonly input?: unknown; readonly output?: unknown },
	handler: JobHandler<unknown, unknown>,
): JobDefinition {
	const runtime = resolveJob(options, handler)
	const name = options.name
	const outside = `Outside a handler, use queue.jobs.<key>.run/start (or queue.enqueue('${name}', ...)).`
	const child = (wait: boolean, args: unknown[]) =>
		requireRun(`${name}.${wait ? 'run' : 'start'}`, outside)
			.durable()
			.child({
				name,
				input: args[0],
				options: args[1] as Record<string, unknown> | undefined,
				wait,
			})
	return {
		kind: 'spool.job',
		name,
		'~runtime': runtime,
		into: (map) => ({
			kind: 'spool.trigger',
			source: runtime.name,
			map: map as ((v: unknown) => never) | undefined,
		}),
		run: (...args: unknown[]) => child(true, args),
		start: (...args: unknown[]) => child(false, args) as Promise<string>,
		waitFor: (match: unknown, opts?: WaitForOptions) =>
			requireRun(`${name}.waitFor`, 'waitFor works only inside a job handler.')
				.durable()
				.waitFor(jobWaitSpec(name, match, opts)),
	}
}

/** Checks options once, at definition time, so a bad option never surfaces while a job runs. */
export function resolveJob(
	options: JobOptions<string, unknown, unknown> & { readonly input?: unknown; readonly output?: unknown },
	handler: JobHandler<unknown, unknown>,
): RuntimeJob {
	const name = options.name
	if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
		throw new ConfigError(`A job needs a name of 1 to 200 characters, got ${JSON.stringify(name)}.`)
	}
	const what = `Job '${name}'`
	if (typeof handler !== 'function') throw new ConfigError(`${what}: the handler must be a function.`)
	if (options.input !== undefined && !isStandardSchema(options.input)) {
		throw new ConfigError(`${what}: 'input' must be a standard schema (zod, valibot, arktype...).`)
	}
	if (options.output !== undefined && !isStandardSchema(options.output)) {
		throw new ConfigError(`${what}: 'output' must be a standard schema (zod, valibot, arktype...).`)
	}
	const retry = options.retry ?? 3
	if (typeof retry === 'number' && !(Number.isInteger(retry) && retry >= 0)) {
		throw new ConfigError(`${what}: 'retry' must be a whole number >= 0, got ${retry}.`)
	}
	const backoff = resolveBackoff(options.backoff, what)
	const cap = backoff.maxRetries
	const retries = (input: unknown): number => {
		const n = typeof retry === 'function' ? retry(input) : retry
		if (!(Number.isInteger(n) && n >= 0)) {
			throw new ConfigError(`${what}: retry(input) must return a whole number >= 0, got ${n}.`)
		}
		return cap === undefined ? n : Math.min(n, cap)
	}
	const priority = options.priority ?? 0
	if (!Number.isInteger(priority))
		throw new ConfigError(`${what}: 'priority' must be an integer, got ${priority}.`)
	const retention = options.retention
	if (retention) {
		for (const key of ['completed', 'cancelled', 'dead'] as const) {
			if (retention[key] !== undefined) parseDuration(retention[key], `${what} retention.${key}`)
		}
	}
	const triggers = options.trigger ?? []
	if (!Array.isArray(triggers) || !triggers.every(isTrigger)) {
		throw new ConfigError(`${what}: 'trigger' must be a list of pipe.into(...) or job.into(...).`)
	}
	return {
		name,
		concurrency: resolveConcurrency(options.concurrency as ConcurrencyOption | undefined, name, what),
		throttle: resolveThrottle(options.throttle as ThrottleOption | undefined, name, what),
		debounce: resolveDebounce(options.debounce as DebounceOption | undefined, name, what),
		triggers: triggers as readonly Trigger<unknown>[],
		cron: options.cron === undefined ? null : resolveCronOption(options.cron as CronOption<unknown>, what),
		inputSchema: options.input as StandardSchemaV1 | undefined,
		outputSchema: options.output as StandardSchemaV1 | undefined,
		retries,
		backoff,
		timeoutMs: options.timeout === undefined ? undefined : parseDuration(options.timeout, `${what} timeout`),
		priority,
		leaseMs: options.lease === undefined ? undefined : parseDuration(options.lease, `${what} lease`),
		retention,
		hooks: {
			onTrigger: options.onTrigger,
			onStart: options.onStart,
			onSuccess: options.onSuccess,
			onFailure: options.onFailure,
			onError: options.onError,
			onCancel: options.onCancel,
			onSettled: options.onSettled,
		},
		handler,
	}
}

/** Whether a value is a job definition made by createJob. */
export function isJobDefinition(value: unknown): value is JobDefinition {
	return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'spool.job'
}
