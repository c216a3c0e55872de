/**
 * The executor runs one claimed job: it decodes and validates the input, builds the handler's
 * context, runs the handler under its timeout, catches everything, and turns what happened into
 * one outcome for the completer. It never throws.
 */
import type { JobContext } from '../context.js'
import { type ActiveRun, currentRun } from '../durable/current.js'
import {
	type DurableHost,
	DurableRun,
	type StepOptions,
	type Suspender,
	type ThreadContext,
	type ThreadOptions,
	type Wait,
} from '../durable/steps.js'
import {
	CancelledError,
	FatalError,
	LeaseLostError,
	NonDeterminismError,
	SerializationError,
	StepInterruptedError,
	ThreadClosureError,
	TimeoutError,
	toError,
	ValidationError,
} from '../errors.js'
import { type BackoffOption, type ResolvedBackoff, resolveBackoff } from '../flow/backoff.js'
import type { RuntimeJob, SettledResult } from '../job.js'
import { decodeJson, encodeJson, encodeOutput, type JsonText } from '../json.js'
import type { Logger } from '../logger.js'
import { validate } from '../schema.js'
import type {
	AttemptError,
	ClaimedJob,
	NewJob,
	Outcome,
	PublishedEvent,
	Storage,
} from '../storage/contract.js'
import type { Clock, Duration, TimerHandle } from '../time.js'

/** The queue's services for durable calls; the execution adds its own signal and log. */
export type DurableServices = Omit<DurableHost, 'log' | 'signal'>

/** What the executor tells the queue, which turns it into events and resolves waiters. */
export interface ExecutionObserver {
	started(job: ClaimedJob, input: unknown): void
	completed(job: ClaimedJob, input: unknown, output: unknown, durationMs: number): void
	/** An attempt failed; `retryAt` is null when the job is dead. */
	failed(job: ClaimedJob, input: unknown, error: Error, retryAt: number | null): void
	cancelled(job: ClaimedJob, input: unknown, error: Error): void
	leaseLost(job: ClaimedJob, error: Error): void
}

/** What one execution needs from the worker. */
export interface ExecutionDeps {
	readonly storage: Storage
	readonly clock: Clock
	readonly logger: Logger
	readonly observer: ExecutionObserver
	/** Persists an outcome (batched) and frees the execution's slot; resolves with whether it was applied. */
	readonly settle: (execution: Execution, outcome: Outcome) => Promise<boolean>
	/** The same without a promise: the result comes to `execution.written` (the per-job fast path). */
	readonly write: (execution: Execution, outcome: Outcome) => void
	readonly addLogs: (id: string, lines: readonly string[]) => void
	/** Whether completed jobs of this definition are deleted at once. */
	readonly removeOnComplete: (def: RuntimeJob) => boolean
	/** Asks the worker to heartbeat this job now. */
	readonly heartbeat: (execution: Execution) => Promise<void>
	/** The jobs a successful run starts (triggers), enqueued in the same transaction as its completion. */
	readonly followUps?: (job: ClaimedJob, output: unknown) => Promise<NewJob[]>
	/** Whether a completion of this job name starts jobs (`followUps` has work); absent: assume so. */
	readonly followsUp?: (name: string) => boolean
	/** Told once the execution concluded: its outcome written (or refused) and its hooks run. */
	readonly ended: (execution: Execution) => void
	/** Child jobs, step limiters and threads. */
	readonly durable: DurableServices
	/** A job of this process suspended until `wakeAt`: look for work then. */
	readonly wakeAt: (at: number) => void
}

/** How long a job waiting on children or events waits at most before it checks again. */
const RECHECK_MS = 5 * 60_000

const NULL_JSON = 'null' as JsonText

/**
 * A completion's event (`job:<name>`, for `waitFor`). Its topic and payload are built when a
 * storage reads them: the memory storage does only when someone waits, most completions never.
 */
class CompletionEvent implements PublishedEvent {
	readonly completion = true as const
	constructor(
		private readonly name: string,
		readonly subject: JsonText,
		private readonly output: JsonText,
	) {}
	get topic(): string {
		return `job:${this.name}`
	}
	get payload(): JsonText {
		return `{"input":${this.subject},"output":${this.output}}` as JsonText
	}
}

/** The settlement of a run that took the fast path (its output is kept on the execution). */
const SUCCEEDED: Settlement = { kind: 'ok', output: undefined }

/** Why the worker stopped an execution from outside. */
export type AbortKind = 'cancelled' | 'lease-lost' | 'closing'

/** How a run ended, before it becomes an outcome. */
export type Settlement =
	| { readonly kind: 'ok'; readonly output: unknown }
	| { readonly kind: 'error'; readonly error: unknown; readonly fatal: boolean }
	| { readonly kind: 'aborted'; readonly why: AbortKind; readonly error: Error }
	| {
			readonly kind: 'suspended'
			readonly wakeAt: number | null
			readonly children: string[]
			readonly waiters: string[]
	  }

/**
 * One running job. The common case (a handler that returns or resolves, no hooks on success, no
 * output schema, no triggers) runs without a promise of its own: the handler's result settles it
 * synchronously into the completer, whose write calls `written`, which ends it.
 */
export class Execution implements Suspender {
	/** Made when the handler first reads `ctx.signal`: most handlers never do. */
	private controller: AbortController | null = null
	private abortReason: Error | null = null
	/** Set once the run got past its input: from then a settlement concludes it at once. */
	private launched = false
	private settlement: Settlement | null = null
	private timer: TimerHandle | null = null
	/** @internal The promise an explicit `ctx.complete`/`fail` returns; for the context. */
	explicitDone: Promise<void> | null = null
	/** @internal `ctx.log` lines of this attempt; for the context. */
	logLines: string[] | null = null
	/** @internal Whether it holds a worker slot; for the worker. */
	holdsSlot = false
	/** @internal The worker's list of executions not yet concluded (no per-job map entry). */
	prevLive: Execution | null = null
	/** @internal See `prevLive`. */
	nextLive: Execution | null = null
	/** @internal Whether it is in that list. */
	inLive = false
	private input: unknown = undefined
	/** The output of a fast-path completion, and when it concluded, until `written`. */
	private output: unknown = undefined
	private concludedAt = 0
	private readonly startedAt: number
	private afterSettle: (() => void) | null = null
	/** Durable calls in flight, and what the handler waits for: it suspends when the first is 0. */
	private inflight = 0
	private waits: Wait[] | null = null
	private checkScheduled = false

	constructor(
		readonly job: ClaimedJob,
		readonly def: RuntimeJob,
		/** @internal Shared by every execution of a worker; for the context. */
		readonly deps: ExecutionDeps,
		/** When the worker started it (one clock read for a batch of launches). */
		startedAt: number = deps.clock.now(),
	) {
		this.startedAt = startedAt
	}

	get token(): string {
		return this.job.lease.token
	}

	/** The handler's abort signal, made on first read (aborted at once if the run already was). */
	get signal(): AbortSignal {
		if (!this.controller) {
			this.controller = new AbortController()
			if (this.abortReason) this.controller.abort(this.abortReason)
		}
		return this.controller.signal
	}

	/** Aborts the signal (the first reason wins), whether or not it was made yet. */
	private abortSignal(error: Error): void {
		if (this.abortReason) return
		this.abortReason = error
		this.controller?.abort(error)
	}

	/** Stops the handler from outside: cancel, lost lease, or shutdown. */
	abort(why: AbortKind, error: Error): void {
		this.abortSignal(error)
		this.resolve({ kind: 'aborted', why, error })
	}

	begin(): () => void {
		this.inflight++
		let ended = false
		return () => {
			if (ended) return
			ended = true
			this.inflight--
			this.scheduleCheck()
		}
	}

	wait(wait: Wait): Promise<never> {
		this.waits ??= []
		this.waits.push(wait)
		this.scheduleCheck()
		return new Promise<never>(() => {})
	}

	/**
	 * Suspends once nothing durable is in flight and something is awaited. Checked after the
	 * microtasks of the current turn, so calls made together (Promise.all) all register first.
	 */
	private scheduleCheck(): void {
		if (this.checkScheduled || this.settlement) return
		this.checkScheduled = true
		setImmediate(() => {
			this.checkScheduled = false
			const waits = this.waits
			if (this.settlement || this.inflight > 0 || !waits || waits.length === 0) return
			let wakeAt: number | null = null
			const children: string[] = []
			const waiters: string[] = []
			for (const w of waits) {
				if (w.wakeAt != null && (wakeAt === null || w.wakeAt < wakeAt)) wakeAt = w.wakeAt
				if (w.child) children.push(w.child)
				if (w.waiter) waiters.push(w.waiter)
			}
			if (children.length + waiters.length > 0) {
				// A backstop: a wake-up lost to a race between processes (a child finishing on another
				// host at the very moment this job suspends) costs a delay, never a stuck job.
				const recheck = this.deps.clock.now() + RECHECK_MS
				if (wakeAt === null || recheck < wakeAt) wakeAt = recheck
			}
			this.resolve({ kind: 'suspended', wakeAt, children, waiters })
		})
	}

	/**
	 * Fixes how the run ended (the first settlement wins) and concludes it: at once when it comes
	 * from the handler's own result (`direct`), after the current microtask otherwise, so a cancel,
	 * a timeout or `ctx.complete` never concludes inside its caller's stack.
	 */
	private resolve(s: Settlement, direct = false): void {
		if (this.settlement) return
		this.settlement = s
		if (this.timer) {
			this.deps.clock.clearTimeout(this.timer)
			this.timer = null
		}
		if (!this.launched) return
		if (direct) this.conclude(s)
		else queueMicrotask(() => this.conclude(s))
	}

	/** @internal Settles from inside the handler (`ctx.complete`/`fail`); resolves once persisted. */
	explicit(s: Settlement): Promise<void> {
		if (this.settlement) return this.explicitDone ?? Promise.resolve()
		this.explicitDone = new Promise<void>((done) => {
			this.afterSettle = done
		})
		this.resolve(s)
		return this.explicitDone
	}

	/** Runs the job to an outcome, then tells `deps.ended`. Never throws. */
	run(): void {
		const { def, job } = this
		let checked: unknown
		try {
			this.input = decodeJson(job.input)
			if (def.inputSchema) {
				checked = validate(def.inputSchema, this.input, `The stored input of job '${job.name}' (${job.id})`)
			}
		} catch (err) {
			this.inputRefused(err)
			return
		}
		if (checked instanceof Promise) {
			checked.then(
				(input: unknown) => {
					this.input = input
					this.launch()
				},
				(err: unknown) => this.inputRefused(err),
			)
			return
		}
		if (def.inputSchema) this.input = checked
		this.launch()
	}

	/** Stored input that no longer decodes or passes its schema: no retry can fix it. */
	private inputRefused(err: unknown): void {
		this.launched = true
		if (this.settlement) this.conclude(this.settlement)
		else this.resolve({ kind: 'error', error: err, fatal: true }, true)
	}

	/** Starts the timeout, the onStart hook and the handler (unless the run was stopped already). */
	private launch(): void {
		this.launched = true
		if (this.settlement) {
			this.conclude(this.settlement)
			return
		}
		const { def, job, deps } = this
		if (def.timeoutMs !== undefined) {
			const ms = def.timeoutMs
			this.timer = deps.clock.setTimeout(() => {
				this.timer = null
				const err = new TimeoutError(`Job '${job.name}' (${job.id}) ran past its timeout of ${ms} ms.`, ms)
				this.abortSignal(err)
				this.resolve({ kind: 'error', error: err, fatal: false })
			}, ms)
		}
		const onStart = def.hooks.onStart
		if (onStart) {
			void this.callHook('onStart', () => onStart(this.input)).then(() => this.startHandler())
		} else {
			this.startHandler()
		}
	}

	private startHandler(): void {
		if (this.settlement) return
		this.deps.observer.started(this.job, this.input)
		let result: unknown
		try {
			const ctx = new Context(this)
			result = currentRun.run(ctx, this.def.handler, this.input, ctx)
		} catch (err) {
			this.resolve({ kind: 'error', error: err, fatal: false }, true)
			return
		}
		if (isThenable(result)) {
			result.then(
				(output) => this.succeeded(output),
				(error) => this.resolve({ kind: 'error', error, fatal: false }, true),
			)
		} else {
			this.succeeded(result)
		}
	}

	/** The handler returned: the fast path when it applies, else a settlement like any other. */
	private succeeded(output: unknown): void {
		if (this.settlement) return
		this.settlement = SUCCEEDED
		if (this.completeNow(output)) {
			if (this.timer) {
				this.deps.clock.clearTimeout(this.timer)
				this.timer = null
			}
			return
		}
		this.settlement = null
		this.resolve({ kind: 'ok', output }, true)
	}

	/** Turns the settlement into an outcome: synchronously on the fast path, else through `concludeSlow`. */
	private conclude(s: Settlement): void {
		if (s.kind === 'ok' && this.completeNow(s.output)) return
		void this.concludeSlow(s).finally(() => this.deps.ended(this))
	}

	/**
	 * The fast path of a success: no output schema, no triggers, no success hooks, output that
	 * encodes. Hands the outcome to the completer, which calls `written`. False: take the slow path.
	 */
	private completeNow(output: unknown): boolean {
		const { def, job, deps } = this
		const hooks = def.hooks
		if (def.outputSchema || hooks.onSuccess || hooks.onSettled) return false
		if (deps.followUps && (deps.followsUp?.(job.name) ?? true)) return false
		let text: JsonText
		if (output === undefined || output === null) {
			text = NULL_JSON
		} else {
			try {
				text = encodeJson(output, `The output of job '${job.name}'`)
			} catch {
				return false // the slow path fails the job with the same error
			}
		}
		this.concludedAt = deps.clock.now()
		this.output = output
		if (this.logLines) deps.addLogs(job.id, this.logLines)
		deps.write(this, {
			kind: 'completed',
			id: job.id,
			token: job.lease.token,
			output: text,
			// A child's row stays for its retention: its parent reads the outcome from it.
			remove: job.parentId === null && deps.removeOnComplete(def),
			event: new CompletionEvent(job.name, job.input, text),
		})
		return true
	}

	/** @internal The completer wrote the fast path's outcome (`ok`: applied). Never busy after. */
	written(ok: boolean): boolean {
		if (ok) {
			this.deps.observer.completed(this.job, this.input, this.output, this.concludedAt - this.startedAt)
		} else {
			this.refused()
		}
		this.output = undefined
		this.afterSettle?.()
		this.deps.ended(this)
		return false
	}

	private async concludeSlow(s: Settlement): Promise<void> {
		const { def, job, deps } = this
		const hooks = def.hooks
		const now = deps.clock.now()
		if (this.logLines) deps.addLogs(job.id, this.logLines)
		try {
			if (s.kind === 'aborted') {
				if (s.why === 'closing') {
					await deps.settle(this, { kind: 'released', id: job.id, token: this.token })
				} else if (s.why === 'cancelled') {
					deps.observer.cancelled(job, this.input, s.error)
					if (hooks.onCancel) await this.callHook('onCancel', () => hooks.onCancel?.(this.input, s.error))
					await this.settled({ cancel: s.error })
				} else {
					deps.observer.leaseLost(job, s.error)
				}
				return
			}
			if (s.kind === 'suspended') {
				const ok = await deps.settle(this, {
					kind: 'suspended',
					id: job.id,
					token: this.token,
					wakeAt: s.wakeAt,
					children: s.children,
					waiters: s.waiters,
				})
				if (!ok) return this.refused()
				if (s.wakeAt !== null) deps.wakeAt(s.wakeAt)
				return
			}
			if (s.kind === 'ok') {
				let text: JsonText
				let output = s.output
				let followUps: NewJob[] = []
				try {
					if (def.outputSchema) {
						output = await validate(def.outputSchema, output, `The output of job '${job.name}' (${job.id})`)
					}
					text = encodeOutput(output, `The output of job '${job.name}'`)
					if (deps.followUps && (deps.followsUp?.(job.name) ?? true))
						followUps = await deps.followUps(job, output)
				} catch (err) {
					return await this.fail(err, true, now)
				}
				const ok = await deps.settle(this, {
					kind: 'completed',
					id: job.id,
					token: this.token,
					output: text,
					// A child's row stays for its retention: its parent reads the outcome from it.
					remove: job.parentId === null && deps.removeOnComplete(def),
					...(followUps.length > 0 ? { followUps } : {}),
					event: new CompletionEvent(job.name, job.input, text),
				})
				if (!ok) return this.refused()
				deps.observer.completed(job, this.input, output, now - this.startedAt)
				if (hooks.onSuccess) await this.callHook('onSuccess', () => hooks.onSuccess?.(this.input, output))
				await this.settled({ output })
				return
			}
			await this.fail(s.error, s.fatal, now)
		} finally {
			this.afterSettle?.()
		}
	}

	private async fail(thrown: unknown, fatal: boolean, now: number): Promise<void> {
		const { def, job, deps } = this
		const error = toError(thrown)
		const isFatal =
			fatal ||
			error instanceof FatalError ||
			error instanceof StepInterruptedError ||
			error instanceof NonDeterminismError ||
			error instanceof ValidationError ||
			error instanceof ThreadClosureError ||
			error instanceof SerializationError
		let retryAt: number | null = null
		if (!isFatal) {
			let allowed = job.maxAttempts
			try {
				// retry(input) may lower the stored cap (never raise it).
				allowed = Math.min(job.maxAttempts, def.retries(this.input) + 1)
			} catch (err) {
				deps.logger.error({ jobId: job.id, err }, 'retry(input) threw; using the stored maxAttempts')
			}
			if (job.attempt < allowed) retryAt = now + this.backoff().delay(job.attempt, this.input)
		}
		const stored = attemptError(error, job.attempt, now)
		const ok = await deps.settle(
			this,
			retryAt === null
				? { kind: 'dead', id: job.id, token: this.token, error: stored }
				: { kind: 'retry', id: job.id, token: this.token, error: stored, runAt: retryAt },
		)
		if (!ok) return this.refused()
		deps.observer.failed(job, this.input, error, retryAt)
		await this.callHook('onError', () => def.hooks.onError?.(this.input, error))
		if (retryAt === null) {
			await this.callHook('onFailure', () => def.hooks.onFailure?.(this.input, error))
			await this.settled({ failure: error })
		}
	}

	/** This run's retry policy: one given at enqueue, else the job's. */
	private backoff(): ResolvedBackoff<unknown> {
		if (this.job.backoff === null) return this.def.backoff
		return resolveBackoff(decodeJson<BackoffOption>(this.job.backoff), `Job '${this.job.name}'`)
	}

	private refused(): void {
		const err = new LeaseLostError(this.job.id, 'its outcome was refused because another worker holds it now')
		this.deps.observer.leaseLost(this.job, err)
	}

	private settled(result: SettledResult<unknown>): Promise<void> | undefined {
		const onSettled = this.def.hooks.onSettled
		if (!onSettled) return undefined
		return this.callHook('onSettled', () => onSettled(this.input, result))
	}

	private async callHook(name: string, fn: () => void | Promise<void> | undefined): Promise<void> {
		try {
			await fn()
		} catch (err) {
			this.deps.logger.error(
				{ jobId: this.job.id, name: this.job.name, hook: name, err },
				`The ${name} hook of job '${this.job.name}' threw; the job's outcome is unchanged.`,
			)
		}
	}
}

/**
 * The handler's `ctx`. A class, so a job that uses none of it allocates no closures: each method
 * is made on first read and kept (so `const { log } = ctx` works too), and the signal is made only
 * when read.
 */
class Context implements JobContext, ActiveRun {
	readonly jobId: string
	readonly name: string
	readonly attempt: number
	readonly maxAttempts: number
	readonly retryCount: number
	private runtime: DurableRun | null = null
	private bound: Partial<Record<ContextMethod, (...args: never[]) => unknown>> | null = null

	constructor(private readonly x: Execution) {
		const job = x.job
		this.jobId = job.id
		this.name = job.name
		this.attempt = job.attempt
		this.maxAttempts = job.maxAttempts
		this.retryCount = job.attempt - 1
	}

	get signal(): AbortSignal {
		return this.x.signal
	}

	/** For the free functions and job definitions (ActiveRun): this context. */
	get ctx(): JobContext {
		return this
	}

	/** The durable runtime of this attempt, made on first use. */
	durable(): DurableRun {
		if (!this.runtime) {
			const x = this.x
			const log = (line: string) => this.doLog(line)
			const host = {
				...x.deps.durable,
				get signal() {
					return x.signal
				},
				log,
			}
			this.runtime = new DurableRun(x.deps.storage, x.deps.clock, host, x, x.job, x.job.lease.token)
		}
		return this.runtime
	}

	/** The method bound to this context, made on first read. */
	private method<K extends ContextMethod>(key: K, fn: JobContext[K]): JobContext[K] {
		this.bound ??= {}
		let f = this.bound[key]
		if (!f) {
			f = (fn as (...args: never[]) => unknown).bind(this)
			this.bound[key] = f
		}
		return f as JobContext[K]
	}

	get heartbeat(): JobContext['heartbeat'] {
		return this.method('heartbeat', Context.prototype.doHeartbeat)
	}
	get log(): JobContext['log'] {
		return this.method('log', Context.prototype.doLog)
	}
	get run(): JobContext['run'] {
		return this.method('run', Context.prototype.doRun)
	}
	get runOnce(): JobContext['runOnce'] {
		return this.method('runOnce', Context.prototype.doRunOnce)
	}
	get sleep(): JobContext['sleep'] {
		return this.method('sleep', Context.prototype.doSleep)
	}
	get thread(): JobContext['thread'] {
		return this.method('thread', Context.prototype.doThread)
	}
	get complete(): JobContext['complete'] {
		return this.method('complete', Context.prototype.doComplete)
	}
	get fail(): JobContext['fail'] {
		return this.method('fail', Context.prototype.doFail)
	}
	get failFatal(): JobContext['failFatal'] {
		return this.method('failFatal', Context.prototype.doFailFatal)
	}

	private doHeartbeat(): Promise<void> {
		return this.x.deps.heartbeat(this.x)
	}
	private doLog(message: string, fields?: Record<string, unknown>): void {
		const x = this.x
		const line = fields ? `${message} ${safeFields(fields)}` : message
		if (!x.logLines) x.logLines = []
		x.logLines.push(line)
		x.deps.logger.info({ jobId: x.job.id, name: x.job.name, ...fields }, message)
	}
	private doRun<T>(step: string | StepOptions, fn: () => T | Promise<T>): Promise<Awaited<T>> {
		return this.durable().run(step, fn)
	}
	private doRunOnce<T>(key: string, fn: () => T | Promise<T>): Promise<Awaited<T>> {
		return this.durable().runOnce(key, fn)
	}
	private doSleep(duration: Duration): Promise<void> {
		return this.durable().sleep(duration)
	}
	private doThread<I, T>(
		step: string | ThreadOptions,
		fn: (input: I, context: ThreadContext) => T | Promise<T>,
		input: I,
	): Promise<Awaited<T>> {
		return this.durable().thread(step, fn, input)
	}
	private doComplete(output?: unknown): Promise<void> {
		return this.x.explicit({ kind: 'ok', output })
	}
	private doFail(reason: unknown): Promise<void> {
		return this.x.explicit({ kind: 'error', error: reason, fatal: false })
	}
	private doFailFatal(reason: unknown): Promise<void> {
		return this.x.explicit({ kind: 'error', error: reason, fatal: true })
	}
}

type ContextMethod =
	| 'heartbeat'
	| 'log'
	| 'run'
	| 'runOnce'
	| 'sleep'
	| 'thread'
	| 'complete'
	| 'fail'
	| 'failFatal'

function isThenable(value: unknown): value is PromiseLike<unknown> {
	return (
		value !== null &&
		(typeof value === 'object' || typeof value === 'function') &&
		typeof (value as { then?: unknown }).then === 'function'
	)
}

/** The stored form of an attempt's error. */
export function attemptError(error: Error, attempt: number, at: number): AttemptError {
	const code = (error as { code?: unknown }).code
	return {
		attempt,
		name: error.name || 'Error',
		message: error.message,
		stack: error.stack,
		code: typeof code === 'string' ? code : undefined,
		at,
	}
}

function safeFields(fields: Record<string, unknown>): string {
	try {
		return JSON.stringify(fields)
	} catch {
		return '[fields]'
	}
}

/** Errors the worker uses to abort executions. */
export const abortErrors = {
	closing: () => new CancelledError('The queue is closing; the job was given back to run again.'),
	cancelled: () => new CancelledError(),
}
