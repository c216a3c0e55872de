/**
 * The durable runtime of one attempt: steps (`run`, `runOnce`, `thread`), durable sleep, child
 * jobs and waits for events. See ARCHITECTURE.md in this folder for the design in a page.
 *
 * Every durable call takes its call index and its step id synchronously, before any await, so
 * calls started together in `Promise.all` get the same ids on every replay. A call whose answer
 * is not there yet (a sleep not due, a child still running, no matching event) registers what it
 * waits for with the `Suspender` and never settles: once no durable call is in flight, the
 * execution ends the attempt as `suspended` and the job resumes by replay when woken.
 */
import {
	CancelledError,
	ConfigError,
	FatalError,
	JobFailedError,
	LeaseLostError,
	NonDeterminismError,
	StepInterruptedError,
	ThrottledError,
	TimeoutError,
	toError,
} from '../errors.js'
import { type BackoffOption, type ResolvedBackoff, resolveBackoff } from '../flow/backoff.js'
import { decodeJson, encodeJson, encodeOutput, type JsonText } from '../json.js'
import type { AttemptError, StepRow, Storage } from '../storage/contract.js'
import { type Clock, type Duration, parseDuration } from '../time.js'

/** Options of a step: `run({ name, retry, backoff, timeout, concurrency }, fn)`. */
export interface StepOptions {
	/** The step's name, unique within the job (a repeated name is numbered in call order). */
	readonly name: string
	/** Retries of the step itself, in this attempt, before the job's own retries. Default 0. */
	readonly retry?: number
	/** The wait between the step's retries (a duration, a config, a list, or a function of the attempt). Default 1s doubling. */
	readonly backoff?: BackoffOption<undefined>
	/** The longest one try of the step may run; past it the try fails with a TimeoutError. */
	readonly timeout?: Duration
	/** How many runs of this step (by job and step name) may run at once in this process. */
	readonly concurrency?: number
}

/** What a durable call waits for. */
export interface Wait {
	readonly wakeAt?: number | null
	readonly child?: string
	readonly waiter?: string
}

/** How durable calls tell the execution that they are in flight, or that they wait. */
export interface Suspender {
	/** A durable call started; call the returned function when it ends. */
	begin(): () => void
	/** The handler waits for this; the returned promise never settles (the attempt suspends). */
	wait(wait: Wait): Promise<never>
}

/** A slot of a step's concurrency limit. */
export interface Limiter {
	acquire(): Promise<() => void>
}

/** What a durable run needs from the queue. */
export interface DurableHost {
	/** Enqueues a child job under a fixed id (idempotent: an existing id is left as it is). */
	enqueueChild(params: {
		readonly name: string
		readonly input: unknown
		readonly options: Record<string, unknown> | undefined
		readonly id: string
		readonly parentId: string
	}): Promise<{ readonly status: string; readonly id: string | null }>
	/** The limiter of a step's `concurrency`, shared by the runs of this process. */
	limiter(key: string, limit: number): Limiter
	/** Runs a serialised function in the worker thread pool. */
	thread(params: {
		readonly name: string
		readonly source: string
		readonly input: unknown
		readonly limits: ThreadLimits
		readonly signal: AbortSignal
	}): Promise<{ readonly value: unknown; readonly logs: readonly string[] }>
	/** Writes a line to the running job's log. */
	log(line: string): void
	/** The running attempt's abort signal. */
	readonly signal: AbortSignal
}

/** What a step call's work decided: a value, an error to throw, or something to wait for. */
type Decision<T> = { readonly value: T } | { readonly error: Error } | { readonly wait: Wait }

/** A `waitFor` call, resolved by the caller (job or pipe) into a topic and how to read events. */
export interface WaitForSpec<T> {
	readonly topic: string
	/** A JSON pattern the event's subject must contain; null for every event (predicate checked here). */
	readonly match: JsonText | null
	readonly predicate?: (subject: unknown) => boolean
	/** The part of an event's payload that the pattern and predicate look at. */
	readonly subject: (payload: unknown) => unknown
	/** What waitFor resolves with, from an event's payload. */
	readonly result: (payload: unknown) => T
	readonly timeoutMs?: number
	/** For messages: `job 'x'`, `pipe 'y'`. */
	readonly what: string
}

export class DurableRun {
	private loaded: Promise<void> | null = null
	private readonly byId = new Map<string, StepRow>()
	private readonly byIndex = new Map<number, StepRow>()
	private readonly counters = new Map<string, number>()
	private index = 0

	constructor(
		private readonly storage: Storage,
		private readonly clock: Clock,
		private readonly host: DurableHost,
		private readonly suspender: Suspender,
		private readonly job: { readonly id: string; readonly name: string; readonly attempt: number },
		private readonly token: string,
	) {}

	/** The next call's index and step id: `run:fetch`, then `run:fetch#2`... Synchronous. */
	private take(kind: string, name: string): { stepId: string; index: number } {
		const key = name === '' ? kind : `${kind}:${name}`
		const n = (this.counters.get(key) ?? 0) + 1
		this.counters.set(key, n)
		return { stepId: n === 1 ? key : `${key}#${n}`, index: this.index++ }
	}

	private load(): Promise<void> {
		this.loaded ??= this.storage.getSteps({ jobId: this.job.id }).then((rows) => {
			for (const r of rows) {
				this.byId.set(r.stepId, r)
				if (r.index !== null) this.byIndex.set(r.index, r)
			}
		})
		return this.loaded
	}

	/** The record of this call from an earlier attempt; throws if a replay went another way. */
	private prior(stepId: string, index: number): StepRow | undefined {
		const there = this.byIndex.get(index)
		if (there && there.stepId !== stepId) {
			throw new NonDeterminismError(
				`Job '${this.job.name}' (${this.job.id}) is not deterministic: its replay met step '${stepId}' as durable call #${index}, where step '${there.stepId}' was recorded. Keep the order of steps, sleeps, child jobs and waits the same on every run (branch only on inputs and step results), or give the changed code a new job name.`,
			)
		}
		const prior = this.byId.get(stepId)
		if (prior && prior.index !== null && prior.index !== index) {
			throw new NonDeterminismError(
				`Job '${this.job.name}' (${this.job.id}) is not deterministic: step '${stepId}' was recorded as durable call #${prior.index}, but its replay reached it as call #${index}. Keep the order of steps, sleeps, child jobs and waits the same on every run.`,
			)
		}
		return prior
	}

	private async save(
		stepId: string,
		name: string,
		index: number,
		state: StepRow['state'],
		output: JsonText | null,
		error: AttemptError | null,
	): Promise<void> {
		const ok = await this.storage.saveStep({
			jobId: this.job.id,
			token: this.token,
			stepId,
			name,
			state,
			index,
			output,
			error,
			now: this.clock.now(),
		})
		if (!ok)
			throw new LeaseLostError(this.job.id, `its lease was lost before step '${stepId}' could be recorded`)
	}

	/**
	 * Runs a call's work as in flight (so the attempt does not suspend under it), then returns its
	 * value, throws its error, or waits. Synchronous errors become rejections.
	 */
	private call<T>(work: () => Promise<Decision<T>>): Promise<T> {
		const end = this.suspender.begin()
		let p: Promise<Decision<T>>
		try {
			p = work()
		} catch (err) {
			p = Promise.reject(err)
		}
		return p.finally(end).then((d) => {
			if ('value' in d) return d.value
			if ('error' in d) throw d.error
			return this.suspender.wait(d.wait)
		})
	}

	/** At-least-once step: stored on success, returned from the record on replay. */
	run<T>(spec: string | StepOptions, fn: () => T | Promise<T>, kind = 'run'): Promise<Awaited<T>> {
		let opts: ResolvedStep
		try {
			opts = resolveStep(spec, kind)
		} catch (err) {
			return Promise.reject(err)
		}
		const { stepId, index } = this.take(kind, opts.name)
		return this.call(async (): Promise<Decision<Awaited<T>>> => {
			await this.load()
			const prior = this.prior(stepId, index)
			if (prior?.state === 'completed') return { value: decodeJson<Awaited<T>>(prior.output ?? 'null') }
			let value: Awaited<T>
			try {
				value = await this.tries(opts, fn)
			} catch (thrown) {
				const err = toError(thrown)
				if (!(err instanceof LeaseLostError)) {
					await this.save(stepId, opts.name, index, 'failed', null, this.stored(err))
				}
				throw thrown
			}
			const output = encodeOutput(value, `The result of step '${opts.name}'`)
			await this.save(stepId, opts.name, index, 'completed', output, null)
			// Hand back what a replay would: the stored JSON, not the live object.
			return { value: decodeJson<Awaited<T>>(output) }
		})
	}

	/** One step's tries in this attempt: its timeout, its retries and backoff, its concurrency. */
	private async tries<T>(opts: ResolvedStep, fn: () => T | Promise<T>): Promise<Awaited<T>> {
		for (let attempt = 1; ; attempt++) {
			const release = opts.concurrency
				? await this.host.limiter(`${this.job.name}\0${opts.name}`, opts.concurrency).acquire()
				: null
			try {
				return await this.once(opts, fn)
			} catch (err) {
				if (attempt > opts.retry || err instanceof FatalError || err instanceof LeaseLostError) throw err
			} finally {
				release?.()
			}
			const ms = opts.backoff.delay(attempt, undefined)
			await new Promise<void>((resolve) => this.clock.setTimeout(resolve, ms))
		}
	}

	private once<T>(opts: ResolvedStep, fn: () => T | Promise<T>): Promise<Awaited<T>> {
		if (opts.timeoutMs === undefined) return Promise.resolve().then(fn) as Promise<Awaited<T>>
		const ms = opts.timeoutMs
		return new Promise<Awaited<T>>((resolve, reject) => {
			const timer = this.clock.setTimeout(
				() => reject(new TimeoutError(`Step '${opts.name}' ran past its timeout of ${ms} ms.`, ms)),
				ms,
			)
			Promise.resolve()
				.then(fn)
				.then(
					(v) => resolve(v as Awaited<T>),
					(e) => reject(e),
				)
				.finally(() => this.clock.clearTimeout(timer))
		})
	}

	private stored(err: Error): AttemptError {
		const code = (err as { code?: unknown }).code
		return {
			attempt: this.job.attempt,
			name: err.name || 'Error',
			message: err.message,
			stack: err.stack,
			code: typeof code === 'string' ? code : undefined,
			at: this.clock.now(),
		}
	}

	/** At-most-once side effect: intent first, outcome after; an intent without outcome is never rerun. */
	runOnce<T>(key: string, fn: () => T | Promise<T>): Promise<Awaited<T>> {
		const { stepId, index } = this.take('once', key)
		return this.call(async (): Promise<Decision<Awaited<T>>> => {
			await this.load()
			const prior = this.prior(stepId, index)
			if (prior?.state === 'completed') return { value: decodeJson<Awaited<T>>(prior.output ?? 'null') }
			if (prior?.state === 'started') throw new StepInterruptedError(key)
			await this.save(stepId, key, index, 'started', null, null)
			let value: Awaited<T>
			try {
				value = await fn()
			} catch (thrown) {
				await this.save(stepId, key, index, 'failed', null, this.stored(toError(thrown)))
				throw thrown
			}
			const output = encodeOutput(value, `The result of runOnce('${key}')`)
			await this.save(stepId, key, index, 'completed', output, null)
			return { value: decodeJson<Awaited<T>>(output) }
		})
	}

	/**
	 * A step run in a worker thread: `fn` is serialised with `fn.toString()` and must be
	 * self-contained (no variables from around it); its result is stored like any step's.
	 */
	thread<I, T>(
		spec: string | ThreadOptions,
		fn: (input: I, context: ThreadContext) => T | Promise<T>,
		input: I,
	): Promise<Awaited<T>> {
		if (typeof fn !== 'function') {
			return Promise.reject(new ConfigError('thread(name, fn, input): fn must be a function.'))
		}
		const opts: ThreadOptions = typeof spec === 'string' ? { name: spec } : spec
		const limits: ThreadLimits = {
			maxOldGenerationSizeMb: opts?.maxOldGenerationSizeMb,
			maxYoungGenerationSizeMb: opts?.maxYoungGenerationSizeMb,
			codeRangeSizeMb: opts?.codeRangeSizeMb,
			stackSizeMb: opts?.stackSizeMb,
		}
		const source = fn.toString()
		return this.run(
			spec,
			async () => {
				const r = await this.host.thread({
					name: opts.name,
					source,
					input,
					limits,
					signal: this.host.signal,
				})
				for (const line of r.logs) this.host.log(line)
				return r.value as Awaited<T>
			},
			'thread',
		) as Promise<Awaited<T>>
	}

	/** Durable sleep: the job leaves its slot and lease, and resumes at the wake time in any process. */
	sleep(duration: Duration): Promise<void> {
		let ms: number
		try {
			ms = parseDuration(duration, 'sleep duration')
		} catch (err) {
			return Promise.reject(err)
		}
		const { stepId, index } = this.take('sleep', '')
		return this.call(async (): Promise<Decision<void>> => {
			await this.load()
			const prior = this.prior(stepId, index)
			if (prior?.state === 'completed') return { value: undefined }
			let wakeAt: number
			if (prior) {
				wakeAt = decodeJson<{ wakeAt: number }>(prior.output ?? '{"wakeAt":0}').wakeAt
			} else {
				wakeAt = this.clock.now() + ms
				await this.save(stepId, 'sleep', index, 'started', encodeJson({ wakeAt }, 'sleep'), null)
			}
			if (this.clock.now() < wakeAt) return { wait: { wakeAt } }
			await this.save(stepId, 'sleep', index, 'completed', encodeJson({ wakeAt }, 'sleep'), null)
			return { value: undefined }
		})
	}

	/**
	 * A child job, started once across every replay under an id made of this job's id and the
	 * call's index. With `wait`, resolves with its output (or throws its final error), the parent
	 * suspended meanwhile; without, resolves with its id at once.
	 */
	child<T>(params: {
		readonly name: string
		readonly input: unknown
		readonly options: Record<string, unknown> | undefined
		readonly wait: boolean
	}): Promise<T> {
		const { stepId, index } = this.take(params.wait ? 'child' : 'start', params.name)
		const given = params.options?.id
		const childId = typeof given === 'string' ? given : `${this.job.id}.${index}`
		const enqueue = () =>
			this.host.enqueueChild({
				name: params.name,
				input: params.input,
				options: params.options,
				id: childId,
				parentId: this.job.id,
			})
		const started = async (): Promise<string> => {
			const r = await enqueue()
			if (r.status === 'throttled' || r.id === null) {
				throw new ThrottledError(params.name, params.name)
			}
			// Deduped or kept under an idempotency key: that job is the child.
			return r.id
		}
		return this.call(async (): Promise<Decision<T>> => {
			await this.load()
			const prior = this.prior(stepId, index)
			if (!params.wait) {
				if (prior?.output) return { value: decodeJson<T>(prior.output) }
				const id = await started()
				await this.save(stepId, params.name, index, 'completed', encodeJson(id, 'child id'), null)
				return { value: id as T }
			}
			if (prior?.state === 'completed') return { value: decodeJson<T>(prior.output ?? 'null') }
			if (prior?.state === 'failed' && prior.error)
				return { error: childError(childId, params.name, prior.error) }
			if (!prior) {
				const id = await started()
				// A replay after a crash before this record enqueues again under the same id: no double.
				await this.save(stepId, params.name, index, 'started', encodeJson(id, 'child id'), null)
				return { wait: { child: id } }
			}
			const id = decodeJson<string>(prior.output ?? encodeJson(childId, 'child id'))
			const row = await this.storage.getJob({ id })
			if (!row) {
				await started()
				return { wait: { child: id } }
			}
			if (row.status === 'completed') {
				const output = row.output ?? ('null' as JsonText)
				// Stored so that replays never need the child's row (it may be pruned).
				await this.save(stepId, params.name, index, 'completed', output, null)
				return { value: decodeJson<T>(output) }
			}
			if (row.status === 'dead' || row.status === 'cancelled') {
				const last = row.errors[row.errors.length - 1]
				const error: AttemptError =
					row.status === 'cancelled'
						? {
								attempt: row.attempt,
								name: 'CancelledError',
								message: 'The child job was cancelled.',
								code: 'SPOOL_CANCELLED',
								at: this.clock.now(),
							}
						: {
								...(last ?? { name: 'Error', message: 'unknown error', at: this.clock.now() }),
								attempt: row.attempt,
							}
				await this.save(stepId, params.name, index, 'failed', null, error)
				return { error: childError(id, params.name, error) }
			}
			return { wait: { child: id } }
		})
	}

	/** Waits, suspended, for an event on a topic (a job's completion, a pipe's message). */
	waitFor<T>(spec: WaitForSpec<T>): Promise<T> {
		const { stepId, index } = this.take('wait', spec.topic)
		const waiterId = `${this.job.id}.${index}`
		return this.call(async (): Promise<Decision<T>> => {
			await this.load()
			const prior = this.prior(stepId, index)
			const timeout = (ms: number) =>
				new TimeoutError(`No matching event for ${spec.what} came within ${ms} ms (waitFor timeout).`, ms)
			if (prior?.state === 'completed') {
				const out = decodeJson<{ value?: unknown; timeout?: number }>(prior.output ?? '{}')
				if (out.timeout !== undefined) return { error: timeout(out.timeout) }
				return { value: out.value as T }
			}
			let deadline: number | null
			if (prior) {
				deadline = decodeJson<{ deadline: number | null }>(prior.output ?? '{"deadline":null}').deadline
			} else {
				deadline = spec.timeoutMs === undefined ? null : this.clock.now() + spec.timeoutMs
				await this.save(stepId, spec.topic, index, 'started', encodeJson({ deadline }, 'waitFor'), null)
			}
			let waiter = await this.storage.getWaiter({ id: waiterId })
			if (!waiter) {
				const ok = await this.storage.addWaiter({
					waiter: { id: waiterId, jobId: this.job.id, topic: spec.topic, match: spec.match },
					token: this.token,
					now: this.clock.now(),
				})
				if (!ok) throw new LeaseLostError(this.job.id, 'its lease was lost before waitFor could be recorded')
				waiter = await this.storage.getWaiter({ id: waiterId })
			}
			const events = waiter?.events ?? []
			for (const event of events) {
				const payload = decodeJson<unknown>(event)
				if (spec.predicate && !spec.predicate(spec.subject(payload))) continue
				const value = spec.result(payload)
				await this.save(
					stepId,
					spec.topic,
					index,
					'completed',
					encodeJson({ value: value ?? null }, 'waitFor'),
					null,
				)
				await this.storage.trimWaiter({ id: waiterId, drop: 'all' })
				return { value }
			}
			if (events.length > 0) await this.storage.trimWaiter({ id: waiterId, drop: events.length })
			if (deadline !== null && this.clock.now() >= deadline) {
				const ms = spec.timeoutMs ?? 0
				await this.save(stepId, spec.topic, index, 'completed', encodeJson({ timeout: ms }, 'waitFor'), null)
				await this.storage.trimWaiter({ id: waiterId, drop: 'all' })
				return { error: timeout(ms) }
			}
			return { wait: { waiter: waiterId, wakeAt: deadline } }
		})
	}
}

/** Resource limits of a thread (Node's worker `resourceLimits`). */
export interface ThreadLimits {
	readonly maxOldGenerationSizeMb?: number
	readonly maxYoungGenerationSizeMb?: number
	readonly codeRangeSizeMb?: number
	readonly stackSizeMb?: number
}

/** Options of `thread`: a step's options plus resource limits. */
export interface ThreadOptions extends StepOptions, ThreadLimits {}

/** What a thread function receives besides its input. */
export interface ThreadContext {
	/** Writes a line to the job's log (sent back when the function returns). */
	log(message: string): void
	/** The worker thread's id (never 0, the main thread's). */
	readonly threadId: number
}

interface ResolvedStep {
	readonly name: string
	readonly retry: number
	readonly backoff: ResolvedBackoff<undefined>
	readonly timeoutMs: number | undefined
	readonly concurrency: number | undefined
}

function resolveStep(spec: string | StepOptions, kind: string): ResolvedStep {
	const opts: StepOptions = typeof spec === 'string' ? { name: spec } : spec
	if (typeof opts !== 'object' || opts === null || typeof opts.name !== 'string' || opts.name.length === 0) {
		throw new ConfigError(
			`${kind}() needs a step name: ${kind}('name', fn) or ${kind}({ name: 'name' }, fn).`,
		)
	}
	const what = `Step '${opts.name}'`
	const retry = opts.retry ?? 0
	if (!(Number.isInteger(retry) && retry >= 0))
		throw new ConfigError(`${what}: 'retry' must be a whole number >= 0, got ${retry}.`)
	const concurrency = opts.concurrency
	if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency >= 1)) {
		throw new ConfigError(`${what}: 'concurrency' must be a whole number >= 1, got ${concurrency}.`)
	}
	return {
		name: opts.name,
		retry,
		backoff: resolveBackoff(opts.backoff, what),
		timeoutMs: opts.timeout === undefined ? undefined : parseDuration(opts.timeout, `${what} timeout`),
		concurrency,
	}
}

/** The error a parent sees for a child that ended dead or cancelled. */
function childError(childId: string, name: string, error: AttemptError): Error {
	if (error.code === 'SPOOL_CANCELLED')
		return new CancelledError(`Child job '${name}' (${childId}) was cancelled.`)
	const cause = Object.assign(new Error(error.message), { name: error.name, code: error.code })
	return new JobFailedError(childId, name, error.attempt, cause)
}

/** A per-process counting semaphore for step `concurrency`. */
export function createLimiter(limit: number): Limiter {
	let active = 0
	const queue: (() => void)[] = []
	const release = () => {
		active--
		const next = queue.shift()
		if (next) {
			active++
			next()
		}
	}
	return {
		acquire() {
			if (active < limit) {
				active++
				return Promise.resolve(release)
			}
			return new Promise((resolve) => queue.push(() => resolve(release)))
		},
	}
}
