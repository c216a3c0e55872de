/**
 * The executor runs one claimed job: it decodes and validates the input, builds the handler's
 * context, runs the handler under its timeout, catches everything, and turns what happened into
 * one outcome for the completer. It never throws.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { JobContext } from '../context.js'
import { StepRecorder } from '../durable/steps.js'
import {
	CancelledError,
	FatalError,
	LeaseLostError,
	NonDeterminismError,
	SerializationError,
	StepInterruptedError,
	TimeoutError,
	toError,
	ValidationError,
} from '../errors.js'
import { type BackoffOption, type ResolvedBackoff, resolveBackoff } from '../flow/backoff.js'
import type { RuntimeJob, SettledResult } from '../job.js'
import { decodeJson, encodeOutput, type JsonText } from '../json.js'
import type { Logger } from '../logger.js'
import { validate } from '../schema.js'
import type { AttemptError, ClaimedJob, Outcome, Storage } from '../storage/contract.js'
import type { Clock, TimerHandle } from '../time.js'

/** The context of the job running in the current async scope, for the free `run` function. */
export const currentJob = new AsyncLocalStorage<JobContext>()

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
	/** Persists an outcome (batched); resolves with whether it was applied. */
	readonly settle: (outcome: Outcome) => Promise<boolean>
	readonly addLogs: (id: string, lines: readonly string[]) => void
	/** Whether completed jobs of this definition are deleted at once. */
	readonly removeOnComplete: (def: RuntimeJob) => boolean
	/** Asks the worker to heartbeat this job now. */
	readonly heartbeat: (execution: Execution) => Promise<void>
}

/** Why the worker stopped an execution from outside. */
export type AbortKind = 'cancelled' | 'lease-lost' | 'closing'

type Settlement =
	| { readonly kind: 'ok'; readonly output: unknown }
	| { readonly kind: 'error'; readonly error: unknown; readonly fatal: boolean }
	| { readonly kind: 'aborted'; readonly why: AbortKind; readonly error: Error }

/** One running job. */
export class Execution {
	private readonly controller = new AbortController()
	private finish: ((s: Settlement) => void) | null = null
	private settlement: Settlement | null = null
	private timer: TimerHandle | null = null
	private explicitDone: Promise<void> | null = null
	private logLines: string[] | null = null
	private input: unknown = undefined
	private readonly startedAt: number

	constructor(
		readonly job: ClaimedJob,
		readonly def: RuntimeJob,
		private readonly deps: ExecutionDeps,
	) {
		this.startedAt = deps.clock.now()
	}

	get token(): string {
		return this.job.lease.token
	}

	/** Stops the handler from outside: cancel, lost lease, or shutdown. */
	abort(why: AbortKind, error: Error): void {
		if (!this.controller.signal.aborted) this.controller.abort(error)
		this.resolve({ kind: 'aborted', why, error })
	}

	private resolve(s: Settlement): void {
		if (this.settlement) return
		this.settlement = s
		if (this.timer) this.deps.clock.clearTimeout(this.timer)
		this.finish?.(s)
	}

	/** Runs the job to an outcome. Never rejects. */
	async run(): Promise<void> {
		const { def, job } = this
		let settlement: Settlement
		try {
			this.input = decodeJson(job.input)
			if (def.inputSchema) {
				this.input = await validate(
					def.inputSchema,
					this.input,
					`The stored input of job '${job.name}' (${job.id})`,
				)
			}
			settlement = await this.runHandler()
		} catch (err) {
			// Stored input that no longer passes its schema: no retry can fix it.
			settlement = { kind: 'error', error: err, fatal: true }
		}
		await this.conclude(settlement)
	}

	private runHandler(): Promise<Settlement> {
		const { def, job, deps } = this
		return new Promise<Settlement>((resolve) => {
			this.finish = resolve
			if (this.settlement) return resolve(this.settlement)
			if (def.timeoutMs !== undefined) {
				const ms = def.timeoutMs
				this.timer = deps.clock.setTimeout(() => {
					const err = new TimeoutError(`Job '${job.name}' (${job.id}) ran past its timeout of ${ms} ms.`, ms)
					this.controller.abort(err)
					this.resolve({ kind: 'error', error: err, fatal: false })
				}, ms)
			}
			const ctx = this.context()
			void this.callHook('onStart', () => def.hooks.onStart?.(this.input)).then(() => {
				if (this.settlement) return
				deps.observer.started(job, this.input)
				let result: unknown
				try {
					result = currentJob.run(ctx, () => def.handler(this.input, ctx))
				} catch (err) {
					this.resolve({ kind: 'error', error: err, fatal: false })
					return
				}
				Promise.resolve(result).then(
					(output) => this.resolve({ kind: 'ok', output }),
					(error) => this.resolve({ kind: 'error', error, fatal: false }),
				)
			})
		})
	}

	private context(): JobContext {
		const { job, deps } = this
		let steps: StepRecorder | null = null
		const recorder = () => {
			steps ??= new StepRecorder(deps.storage, deps.clock, job.id, job.lease.token, job.attempt)
			return steps
		}
		const explicit = (s: Settlement): Promise<void> => {
			if (this.settlement) return this.explicitDone ?? Promise.resolve()
			this.explicitDone = new Promise<void>((done) => {
				this.afterSettle = done
			})
			this.resolve(s)
			return this.explicitDone
		}
		return {
			jobId: job.id,
			name: job.name,
			attempt: job.attempt,
			maxAttempts: job.maxAttempts,
			retryCount: job.attempt - 1,
			signal: this.controller.signal,
			heartbeat: () => deps.heartbeat(this),
			log: (message, fields) => {
				const line = fields ? `${message} ${safeFields(fields)}` : message
				if (!this.logLines) this.logLines = []
				this.logLines.push(line)
				deps.logger.info({ jobId: job.id, name: job.name, ...fields }, message)
			},
			run: (name, fn) => recorder().run(name, fn),
			runOnce: (key, fn) => recorder().runOnce(key, fn),
			complete: (output) => explicit({ kind: 'ok', output }),
			fail: (reason) => explicit({ kind: 'error', error: reason, fatal: false }),
			failFatal: (reason) => explicit({ kind: 'error', error: reason, fatal: true }),
		}
	}

	private afterSettle: (() => void) | null = null

	private async conclude(s: Settlement): Promise<void> {
		const { def, job, deps } = this
		const now = deps.clock.now()
		if (this.logLines) deps.addLogs(job.id, this.logLines)
		try {
			if (s.kind === 'aborted') {
				if (s.why === 'closing') {
					await deps.settle({ kind: 'released', id: job.id, token: this.token })
				} else if (s.why === 'cancelled') {
					deps.observer.cancelled(job, this.input, s.error)
					await this.callHook('onCancel', () => def.hooks.onCancel?.(this.input, s.error))
					await this.settled({ cancel: s.error })
				} else {
					deps.observer.leaseLost(job, s.error)
				}
				return
			}
			if (s.kind === 'ok') {
				let text: JsonText
				let output = s.output
				try {
					if (def.outputSchema) {
						output = await validate(def.outputSchema, output, `The output of job '${job.name}' (${job.id})`)
					}
					text = encodeOutput(output, `The output of job '${job.name}'`)
				} catch (err) {
					return await this.fail(err, true, now)
				}
				const ok = await deps.settle({
					kind: 'completed',
					id: job.id,
					token: this.token,
					output: text,
					remove: deps.removeOnComplete(def),
				})
				if (!ok) return this.refused()
				deps.observer.completed(job, this.input, output, now - this.startedAt)
				await this.callHook('onSuccess', () => def.hooks.onSuccess?.(this.input, output))
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

	private settled(result: SettledResult<unknown>): Promise<void> {
		return this.callHook('onSettled', () => this.def.hooks.onSettled?.(this.input, result))
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
