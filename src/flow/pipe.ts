/**
 * Pipes (seed 004): named, validated event channels. `pipe.send(data)` stores the event durably as
 * a job of the pipe's internal name (`spool:pipe:<name>`), in one insert, and returns. A worker
 * runs that job; its completion enqueues every job whose `trigger` lists `pipe.into(map)`, in the
 * same transaction (see trigger.ts). So once `send` resolved, each listening job starts exactly
 * once for the event, even if the sender crashes right after.
 */
import { requireRun } from '../durable/current.js'
import { pipeWaitSpec, type WaitForOptions, type WaitPattern } from '../durable/wait.js'
import { ConfigError } from '../errors.js'
import { isStandardSchema, type StandardSchemaV1 } from '../schema.js'
import type { Trigger } from './trigger.js'

/** The internal job name that carries a pipe's events. */
export function pipeJobName(pipe: string): string {
	return `spool:pipe:${pipe}`
}

/** What a queue binds into a pipe so that `pipe.send` can store events. */
export type PipeSender = (data: unknown) => Promise<void>

/** The runtime form of a pipe; internal. */
export interface RuntimePipe {
	readonly name: string
	readonly jobName: string
	readonly schema: StandardSchemaV1 | undefined
	/** Set by the queue the pipe is registered with. */
	sender: PipeSender | null
}

/** A pipe: `Raw` is what `send` takes, `Data` what triggers receive (the schema's output). */
export interface PipeDefinition<Name extends string = string, Raw = unknown, Data = unknown> {
	readonly kind: 'spool.pipe'
	readonly name: Name
	/** The runtime form; internal. */
	readonly '~runtime': RuntimePipe
	/**
	 * Validates `data`, stores it as an event, and resolves once it is stored. Every job listing
	 * `this.into(...)` in its `trigger` then starts once for it. The pipe must be in a queue's
	 * `pipes` (the queue it was registered with last stores it).
	 */
	send(data: Raw): Promise<void>
	/** A trigger for a job's `trigger` list: each event starts that job with `map(data)` as input. */
	into<T = Data>(map?: (data: Data) => T): Trigger<T>
	/**
	 * Inside a job handler: waits, suspended (no slot, no lease), until a message that contains
	 * `match` (or satisfies the predicate) is sent after the wait began; resolves with it.
	 * `timeout` throws a TimeoutError.
	 */
	waitFor(match: WaitPattern<Raw> | ((data: Raw) => boolean), options?: WaitForOptions): Promise<Data>
}

/** The options of createPipe. */
export interface PipeOptions<Name extends string, S> {
	/** The pipe's unique name. */
	readonly name: Name
	/** A standard schema validating what is sent. */
	readonly input?: S
}

type In<S> = StandardSchemaV1.InferInput<S & StandardSchemaV1>
type Out<S> = StandardSchemaV1.InferOutput<S & StandardSchemaV1>

/** Creates a pipe with a schema. */
export function createPipe<const Name extends string, S extends StandardSchemaV1>(
	options: PipeOptions<Name, S> & { readonly input: S },
): PipeDefinition<Name, In<S>, Out<S>>
/** Creates a pipe without a schema; `T` is the type of its data. */
export function createPipe<T = unknown, const Name extends string = string>(
	options: PipeOptions<Name, undefined>,
): PipeDefinition<Name, T, T>
export function createPipe(options: PipeOptions<string, unknown>): PipeDefinition {
	const name = options?.name
	if (typeof name !== 'string' || name.length === 0 || name.length > 180) {
		throw new ConfigError(`A pipe needs a name of 1 to 180 characters, got ${JSON.stringify(name)}.`)
	}
	if (options.input !== undefined && !isStandardSchema(options.input)) {
		throw new ConfigError(`Pipe '${name}': 'input' must be a standard schema (zod, valibot, arktype...).`)
	}
	const runtime: RuntimePipe = {
		name,
		jobName: pipeJobName(name),
		schema: options.input as StandardSchemaV1 | undefined,
		sender: null,
	}
	return {
		kind: 'spool.pipe',
		name,
		'~runtime': runtime,
		send(data) {
			if (!runtime.sender) {
				return Promise.reject(
					new ConfigError(
						`Pipe '${name}' is not registered with a queue: pass it in createQueue({ pipes: { ${name} } }).`,
					),
				)
			}
			return runtime.sender(data)
		},
		into: (map) => ({
			kind: 'spool.trigger',
			source: runtime.jobName,
			map: map as ((v: never) => never) | undefined,
		}),
		waitFor: (match, opts) =>
			requireRun(`pipe '${name}'.waitFor`, 'waitFor works only inside a job handler.')
				.durable()
				.waitFor(pipeWaitSpec(name, runtime.jobName, match, opts)) as Promise<never>,
	}
}

/** Whether a value is a pipe made by createPipe. */
export function isPipeDefinition(value: unknown): value is PipeDefinition {
	return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'spool.pipe'
}
