/**
 * createQueue wires job definitions, a storage and a worker together, and is the API users hold:
 * enqueue, run, inspect, cancel, replay, close.
 */
import type { JobContext } from './context.js'
import { currentRun } from './durable/current.js'
import { createLimiter, type Limiter } from './durable/steps.js'
import { ThreadPools } from './durable/thread.js'
import { jobWaitSpec, type WaitForOptions, type WaitPattern } from './durable/wait.js'
import {
	CancelledError,
	ConfigError,
	JobFailedError,
	JobNotFoundError,
	QueueClosedError,
	ThrottledError,
	TimeoutError,
	toError,
	UnknownJobError,
} from './errors.js'
import { type Emitter, TypedEmitter } from './events.js'
import { type BackoffFunction, type BackoffOption, resolveBackoff } from './flow/backoff.js'
import { type CronScheduler, checkSchedule, cronerScheduler, type ResolvedCron } from './flow/cron.js'
import { isPipeDefinition, type PipeDefinition } from './flow/pipe.js'
import { CronRunner } from './flow/schedule.js'
import { type Trigger, triggeredId } from './flow/trigger.js'
import { createIdGenerator } from './id.js'
import { isJobDefinition, type JobDefinition, type Retention, type RuntimeJob, resolveJob } from './job.js'
import { decodeJson, encodeJson, type JsonText, type JsonValue } from './json.js'
import { consoleLogger, type Logger } from './logger.js'
import { validate } from './schema.js'
import type {
	AttemptError,
	ClaimedJob,
	DedupeScope,
	EnqueueResult,
	JobRow,
	JobStatus,
	NewJob,
	QueueStats,
	StepRow,
	Storage,
} from './storage/contract.js'
import { isTerminal, matchesPattern } from './storage/contract.js'
import { memory } from './storage/memory.js'
import { type Clock, type Duration, parseDuration, systemClock } from './time.js'
import type { DurableServices, ExecutionObserver } from './worker/executor.js'
import { AUTO_PREFETCH_MAX, type RuntimeErrorSource, Worker } from './worker/worker.js'

// ---------------------------------------------------------------------------------------------
// Types of the jobs map: definitions, bare handlers, or (producer-only) payload types.

/** A job entry's name: a definition's own name, or its key in the map. */
export type EntryName<K extends string, V> =
	V extends JobDefinition<infer N, infer _R, infer _I, infer _O> ? N : K
/** What enqueuing a job entry takes. */
export type EntryInput<V> =
	V extends JobDefinition<string, infer R, infer _I, infer _O>
		? R
		: V extends (input: infer P, ctx: JobContext) => unknown
			? P
			: V
/** What a run of a job entry resolves with. */
export type EntryOutput<V> =
	V extends JobDefinition<string, infer _R, infer _I, infer O>
		? O
		: V extends (input: never, ctx: JobContext) => infer R
			? Awaited<R>
			: unknown

/** Job name → input type, for `queue.enqueue`. Seed 001's job map. */
export type EnqueueMap<J> = { [K in keyof J & string as EntryName<K, J[K]>]: EntryInput<J[K]> }
/** Job name → output type. */
export type OutputMap<J> = { [K in keyof J & string as EntryName<K, J[K]>]: EntryOutput<J[K]> }

/** The arguments of a call that takes an input and options; the input is optional when it may be undefined. */
export type InputArgs<In, Opts> = undefined extends In
	? [input?: In, options?: Opts]
	: [input: In, options?: Opts]

// ---------------------------------------------------------------------------------------------
// Options.

/** Options for one enqueue. */
export interface EnqueueOptions {
	/** The job's id. Enqueueing an id that exists returns that job instead (seed 000's `id`). */
	readonly id?: string
	/** Run no sooner than this long from now. */
	readonly delay?: Duration
	/** Run no sooner than this time. */
	readonly runAt?: Date | number
	/** Lower runs first; overrides the job's priority. */
	readonly priority?: number
	/** Attempts in all, first included; overrides the job's `retry + 1`. */
	readonly maxAttempts?: number
	/** The wait between retries of this run, overriding the job's (a duration, config or list). */
	readonly backoff?: Exclude<BackoffOption, BackoffFunction>
	/** While a job of this name with this key is pending (or active, per scope), enqueue does nothing. */
	readonly dedupeKey?: string
	/** `pending+active` (default): no duplicate while one waits or runs. `pending`: one may wait behind one running. */
	readonly dedupeScope?: DedupeScope
	/** Enqueueing again with this key returns the job made the first time, for as long as it is kept. */
	readonly idempotencyKey?: string
	/**
	 * Your own open transaction (a `pg` client after `BEGIN`): the job is inserted inside it and
	 * exists only if it commits. PostgreSQL storage only; other storages refuse it.
	 */
	readonly tx?: TransactionClient
}

/** A database connection in an open transaction, as `pg`'s Client and PoolClient are. */
export interface TransactionClient {
	query(text: string, values?: unknown[]): Promise<unknown>
}

/** Worker settings of a queue. */
export interface WorkerOptions {
	/** Jobs this process runs at once. Default 10 (or the queue's `concurrency`). */
	readonly concurrency?: number
	/** How often to look for jobs enqueued by other processes. Default 1s. */
	readonly pollInterval?: Duration
	/** How long a claim holds a job without heartbeat. Default 30s; heartbeats every third of it. */
	readonly lease?: Duration
	/** The most jobs one claim takes. Default 100, or the prefetch when larger (1,000 for `'auto'`). */
	readonly batchSize?: number
	/**
	 * Jobs to claim ahead of free slots, held leased (and heartbeated) by this process and started
	 * as slots free, so a slot never waits for a storage round trip. Claimed-ahead jobs show as
	 * `active` and other processes cannot take them until this one starts them, gives them back (on
	 * close) or dies (lease expiry). A number: at most that many, refilled when half are gone.
	 * `'auto'`: sized to the work: it grows (up to 1,000) while slots sit empty waiting for claims
	 * and shrinks when a claimed-ahead job waited more than 100 ms to start, so short jobs are
	 * claimed hundreds at a time and slow ones are not hoarded away from other processes.
	 * Default `'auto'` on every storage. `0` claims only free slots (a job is never held ahead).
	 */
	readonly prefetch?: number | 'auto'
	/** How often the reaper looks for jobs of lost workers and wakes sleeping ones. Default 1s. */
	readonly maintenanceInterval?: Duration
	/**
	 * Run each job in the enqueuing call: `enqueue`/`start` resolve after every due job ran (seed
	 * 003's ImmediateBackend). For tests.
	 */
	readonly inline?: boolean
}

/** Options of createQueue. */
export interface QueueOptions<J, P = Record<string, never>> {
	/** The jobs: definitions from createJob, or bare handlers keyed by name. */
	readonly jobs?: J
	/** The pipes from createPipe whose events this queue stores and whose triggers it runs. */
	readonly pipes?: P
	/** Computes cron ticks. Default: croner. */
	readonly cronScheduler?: CronScheduler
	/** Where jobs are kept. Default: memory (lost on exit). */
	readonly storage?: Storage
	/** Jobs this process runs at once. Default 10. */
	readonly concurrency?: number
	/** `false` for a producer-only process (a web server) that enqueues and never runs jobs. */
	readonly worker?: boolean | WorkerOptions
	/** Where spool logs. Default: warnings and errors to stderr. pino fits as it is. */
	readonly logger?: Logger
	/** How long finished jobs are kept. Default: completed and cancelled 1 day, dead 30 days. */
	readonly retention?: Retention
	/** The source of time. Default the system clock; tests pass createTestClock(). */
	readonly clock?: Clock
}

// ---------------------------------------------------------------------------------------------
// What the queue returns.

/** A job as the API shows it: input and output decoded. */
export interface JobInfo<In = unknown, Out = unknown> {
	readonly id: string
	readonly name: string
	readonly status: JobStatus
	readonly input: In
	readonly output: Out | undefined
	readonly priority: number
	readonly runAt: Date
	readonly attempt: number
	readonly maxAttempts: number
	readonly errors: readonly AttemptError[]
	readonly logs: readonly string[]
	readonly dedupeKey: string | null
	readonly idempotencyKey: string | null
	readonly parentId: string | null
	readonly leaseOwner: string | null
	readonly createdAt: Date
	readonly updatedAt: Date
	readonly startedAt: Date | null
	readonly finishedAt: Date | null
}

/** A page of jobs, newest first. */
export interface JobList {
	readonly jobs: readonly JobInfo[]
	readonly nextCursor: string | null
}

/** A started job. */
export interface JobHandle<Out> {
	readonly id: string
	readonly name: string
	/**
	 * `created`; `existing` (same id or idempotency key); `deduped` (`id` is the job already queued);
	 * `debounced` (`id` is the pending job that now carries this input); `throttled` (dropped by
	 * the throttle: nothing was stored, `id` is the one it would have had, and `result()` rejects
	 * with ThrottledError).
	 */
	readonly status: 'created' | 'existing' | 'deduped' | 'debounced' | 'throttled'
	/** Resolves with the output when the job completes; rejects when it ends dead or cancelled. */
	result(options?: { readonly timeout?: Duration }): Promise<Out>
}

/** What `cancel` did. */
export type CancelOutcome =
	| { readonly status: 'cancelled'; readonly previous: 'pending' | 'active' | 'waiting' }
	| { readonly status: 'already-finished'; readonly current: 'completed' | 'dead' | 'cancelled' }
	| { readonly status: 'not-found' }

/** A job claimed by `claimOrEnqueue`: this caller runs it, then settles it. Its lease is heartbeated meanwhile. */
export interface ClaimHandle<In> {
	readonly id: string
	readonly input: In
	readonly attempt: number
	/** Marks it completed. */
	complete(output?: unknown): Promise<void>
	/** Marks the attempt failed: retried after backoff if attempts are left, else dead. */
	fail(reason: unknown): Promise<void>
	/** Marks it dead at once, no retry. */
	failFatal(reason: unknown): Promise<void>
}

/** A job bound to a queue: `queue.jobs.x`. */
export interface BoundJob<In, Out> extends Emitter<JobEvents<Out>, JobEventMeta<In>> {
	readonly name: string
	/**
	 * Enqueues a run; resolves once stored, with a handle to its result. Inside a handler it starts
	 * a child job, once across replays of the parent.
	 */
	start(...args: InputArgs<In, EnqueueOptions>): Promise<JobHandle<Out>>
	/**
	 * Enqueues a run and resolves with its output (rejects with its final error), wherever it runs:
	 * a producer-only process gets the result of a run executed by another process. Inside a
	 * handler it is a durable child job: started once, the parent suspended until it ends.
	 */
	run(...args: InputArgs<In, EnqueueOptions>): Promise<Out>
	/**
	 * A trigger for another job's `trigger` list: each successful run of this job starts that job
	 * once, with `map(output)` as input.
	 */
	into<T = Out>(map?: (output: Out) => T): Trigger<T>
	/**
	 * Cancels the runs of this job that have not finished and whose input contains `input` (see
	 * `queue.cancel`). Resolves with what became of each; an empty list when none matched.
	 */
	cancel(input: WaitPattern<In>): Promise<(CancelOutcome & { readonly id: string })[]>
	/**
	 * Inside a handler: waits, suspended, until a run of this job whose input contains `match` (or
	 * satisfies the predicate) completes; resolves with its output. `timeout` throws TimeoutError.
	 */
	waitFor(match: WaitPattern<In> | ((input: In) => boolean), options?: WaitForOptions): Promise<Out>
	/** Enqueues many runs in one storage round trip. */
	startMany(
		items: readonly { readonly input: In; readonly options?: EnqueueOptions }[],
	): Promise<JobHandle<Out>[]>
}

/** Events of one job (`queue.jobs.x.on(...)`), seed 004's names. */
export interface JobEvents<Out> {
	trigger: undefined
	start: undefined
	success: Out
	error: Error
	failure: Error
	cancel: Error
	settled: { readonly output: Out } | { readonly failure: Error } | { readonly cancel: Error }
}

/** What every job event also receives. */
export interface JobEventMeta<In> {
	readonly id: string
	readonly input: In
	readonly attempt: number
}

/** Events of a queue (`queue.on(...)`). */
export interface QueueEvents {
	enqueued: { readonly id: string; readonly name: string }
	/** An attempt started at `startedAt`; `runAt` is when the job became due (the difference: queue latency). */
	started: {
		readonly id: string
		readonly name: string
		readonly attempt: number
		readonly runAt: Date
		readonly startedAt: Date
	}
	completed: {
		readonly id: string
		readonly name: string
		readonly attempt: number
		readonly output: unknown
		readonly durationMs: number
	}
	/** Every failed attempt; `retryAt` is null when the job is dead. */
	failed: {
		readonly id: string
		readonly name: string
		readonly attempt: number
		readonly error: Error
		readonly retryAt: Date | null
	}
	dead: { readonly id: string; readonly name: string; readonly attempt: number; readonly error: Error }
	cancelled: { readonly id: string; readonly name: string }
	/** This process lost a job's lease; its outcome was not recorded. */
	leaseLost: { readonly id: string; readonly name: string; readonly error: Error }
	/** A runtime problem: the storage failed, a hook or listener threw. Work goes on. */
	error: { readonly error: Error; readonly source: RuntimeErrorSource | 'listener' | 'hook' | 'cron' }
}

/** Dead letters: jobs that failed for good. */
export interface DeadLetters {
	list(options?: {
		readonly name?: string
		readonly limit?: number
		readonly cursor?: string | null
	}): Promise<JobList>
	/** Replays one dead job: pending again with its attempts reset. */
	replay(id: string): Promise<boolean>
	/** Replays every dead job of a name; returns how many. */
	replayAll(name: string): Promise<number>
}

/** A pipe bound to a queue: `queue.pipes.x`. */
export interface BoundPipe<Raw> {
	readonly name: string
	/** Validates and stores an event; resolves once stored. */
	send(data: Raw): Promise<void>
}

/** What `send` takes for a pipe entry. */
export type PipeInput<V> = V extends PipeDefinition<string, infer R, infer _D> ? R : never

/** A queue. */
export interface Queue<J = Record<string, unknown>, P = Record<string, never>> extends Emitter<QueueEvents> {
	/** Resolves when the storage is open and the worker started. Every method waits for it. */
	readonly ready: Promise<void>
	/** The jobs, bound to this queue. */
	readonly jobs: { readonly [K in keyof J & string]: BoundJob<EntryInput<J[K]>, EntryOutput<J[K]>> }
	/** The pipes, bound to this queue. */
	readonly pipes: { readonly [K in keyof P & string]: BoundPipe<PipeInput<P[K]>> }
	readonly logger: Logger
	readonly storage: Storage
	/** Stops claiming jobs of this name, in every process sharing the storage, until `resume`. Durable. */
	pause(name: keyof EnqueueMap<J> & string): Promise<void>
	/** Lets jobs of a paused name be claimed again. */
	resume(name: keyof EnqueueMap<J> & string): Promise<void>
	/** The paused job names. */
	listPaused(): Promise<string[]>
	/** Enqueues by name; null when a dedupe key or a throttle held it back (seeds 001, 003, 004). */
	enqueue<N extends keyof EnqueueMap<J> & string>(
		name: N,
		...args: InputArgs<EnqueueMap<J>[N], EnqueueOptions>
	): Promise<string | null>
	/** Enqueues many, in one storage round trip; null where a dedupe key held one back. */
	enqueueMany(
		items: readonly {
			[N in keyof EnqueueMap<J> & string]: {
				readonly name: N
				readonly input: EnqueueMap<J>[N]
				readonly options?: EnqueueOptions
			}
		}[keyof EnqueueMap<J> & string][],
	): Promise<(string | null)[]>
	/**
	 * Seed 003's single-flight: claim the pending job with this dedupe key, or make one already
	 * claimed; null when one with the key runs and another waits behind it (or, with scope
	 * `pending+active`, when one runs). The caller then runs the work and settles the handle.
	 */
	claimOrEnqueue<N extends keyof EnqueueMap<J> & string>(
		name: N,
		input: EnqueueMap<J>[N],
		options: EnqueueOptions & { readonly dedupeKey: string },
	): Promise<ClaimHandle<EnqueueMap<J>[N]> | null>
	/** One job, or null when it does not exist. */
	getJob(id: string): Promise<JobInfo | null>
	/** The steps recorded for a job. */
	getSteps(id: string): Promise<StepRow[]>
	/** Jobs, newest first, filtered and paged. */
	listJobs(options?: {
		readonly name?: string
		readonly status?: JobStatus
		readonly parentId?: string
		readonly limit?: number
		readonly cursor?: string | null
	}): Promise<JobList>
	/** Counts by state, in all and per name (seed 003's getStats). */
	getStats(name?: string): Promise<QueueStats>
	/**
	 * Cancels a job that has not finished: a pending or waiting one at once; an active one has its
	 * signal aborted and ends cancelled. Its unfinished child jobs are cancelled too. A finished job
	 * is left as it is (`already-finished`).
	 */
	cancel(id: string): Promise<CancelOutcome>
	/** Waits for a job's outcome, wherever it runs. */
	result<N extends keyof OutputMap<J> & string>(
		id: string,
		options?: { readonly timeout?: Duration; readonly name?: N },
	): Promise<OutputMap<J>[N]>
	readonly dead: DeadLetters
	/** Runs every due job and resolves when none is left (tests). No-op without a worker. */
	drain(): Promise<void>
	/** Runs maintenance now: reaps expired leases, wakes due sleepers (tests). */
	maintain(): Promise<void>
	/**
	 * Stops claiming, lets running jobs finish for up to `timeout` (default 10s), then aborts them
	 * and gives their jobs back without counting an attempt; closes the storage. Safe to call twice.
	 */
	close(options?: { readonly timeout?: Duration }): Promise<void>
}

// ---------------------------------------------------------------------------------------------

/** Pipe sends made by each running attempt, per pipe: their order gives events stable ids. */
const sendCounts = new WeakMap<JobContext, Map<string, number>>()

/** Marks a call made with no input argument at all. */
const NO_INPUT: unique symbol = Symbol('no input')

/** The one transaction a batch of enqueues runs in: every item names the same `tx`, or none does. */
function sharedTx(items: readonly { readonly options?: EnqueueOptions }[]): TransactionClient | undefined {
	const tx = items[0]?.options?.tx
	if (items.some((i) => i.options?.tx !== tx)) {
		throw new ConfigError('The jobs of one enqueueMany/startMany must all name the same tx, or none.')
	}
	return tx
}

const DEFAULT_RETENTION = { completed: 86_400_000, cancelled: 86_400_000, dead: 30 * 86_400_000 }

interface Waiter {
	resolve(output: unknown): void
	reject(error: Error): void
}

/** Creates a queue. Call `await queue.ready` (or any method) to open it. */
export function createQueue<J = Record<string, unknown>, P = Record<string, never>>(
	options: QueueOptions<J, P> = {},
): Queue<J, P> {
	return new QueueImpl<J, P>(options) as unknown as Queue<J, P>
}

/** A job a trigger starts, and how its input is made from the source's value. */
interface TriggerTarget {
	readonly def: RuntimeJob
	readonly map: ((value: never) => unknown) | undefined
}

class QueueImpl<J, P> {
	readonly ready: Promise<void>
	readonly logger: Logger
	readonly storage: Storage
	readonly jobs: Record<string, BoundJobImpl>
	readonly pipes: Record<string, { name: string; send(data: unknown): Promise<void> }> = {}
	private readonly targets = new Map<string, TriggerTarget[]>()
	private cron: CronRunner | null = null
	readonly dead: DeadLetters
	private readonly defs = new Map<string, RuntimeJob>()
	private readonly bound = new Map<string, BoundJobImpl>()
	private readonly clock: Clock
	private readonly worker: Worker | null
	private readonly inline: boolean
	private readonly events: TypedEmitter<QueueEvents>
	private readonly waiters = new Map<string, Set<Waiter>>()
	private readonly nextId = createIdGenerator()
	private readonly retention: { completed: number; cancelled: number; dead: number }
	private readonly retentionByName = new Map<string, { completed: number; cancelled: number; dead: number }>()
	private readonly pollIntervalMs: number
	private readonly leaseMs: number
	private closed = false
	private closing: Promise<void> | null = null
	private readonly limiters = new Map<string, Limiter>()
	private threads: ThreadPools | null = null

	constructor(options: QueueOptions<J, P>) {
		this.logger = options.logger ?? consoleLogger()
		this.storage = options.storage ?? memory()
		this.clock = options.clock ?? systemClock
		this.events = new TypedEmitter<QueueEvents>((err, event) =>
			this.logger.error({ err, event }, `A listener of '${event}' threw.`),
		)
		this.retention = resolveRetention(options.retention, DEFAULT_RETENTION, 'createQueue retention')
		this.jobs = {}
		for (const [key, entry] of Object.entries((options.jobs ?? {}) as Record<string, unknown>)) {
			const def = isJobDefinition(entry)
				? entry['~runtime']
				: typeof entry === 'function'
					? resolveJob({ name: key }, entry as RuntimeJob['handler'])
					: null
			if (!def) {
				throw new ConfigError(
					`jobs.${key} must be a job from createJob() or a handler function, got ${typeof entry}. A producer-only queue passes its job map as a type: createQueue<Jobs>({ worker: false }).`,
				)
			}
			if (this.defs.has(def.name)) {
				throw new ConfigError(`Two jobs are named '${def.name}': job names must be unique in a queue.`)
			}
			this.defs.set(def.name, def)
			if (def.retention) {
				this.retentionByName.set(
					def.name,
					resolveRetention(def.retention, this.retention, `Job '${def.name}' retention`),
				)
			}
			const bound = new BoundJobImpl(this, def)
			this.bound.set(def.name, bound)
			this.jobs[key] = bound
		}
		for (const [key, entry] of Object.entries((options.pipes ?? {}) as Record<string, unknown>)) {
			if (!isPipeDefinition(entry)) {
				throw new ConfigError(`pipes.${key} must be a pipe from createPipe(), got ${typeof entry}.`)
			}
			const pipe = entry['~runtime']
			if (this.defs.has(pipe.jobName)) {
				throw new ConfigError(`Two pipes are named '${pipe.name}': pipe names must be unique in a queue.`)
			}
			// A pipe's events are jobs of an internal name whose output is the event's data.
			const def = resolveJob({ name: pipe.jobName, input: pipe.schema, retry: 10 }, (data: unknown) => data)
			this.defs.set(def.name, def)
			const send = async (data: unknown) => {
				this.assertOpen()
				// Sent from a handler: the event's id follows from the job and the call's place in it,
				// so a retried attempt that sends again stores no second event.
				const ctx = currentRun.getStore()?.ctx
				let id: string | undefined
				if (ctx) {
					let counts = sendCounts.get(ctx)
					if (!counts) {
						counts = new Map()
						sendCounts.set(ctx, counts)
					}
					const n = (counts.get(pipe.name) ?? 0) + 1
					counts.set(pipe.name, n)
					id = `${ctx.jobId}:send:${pipe.name}:${n}`
				}
				const row = await this.prepare(def.name, data, id === undefined ? undefined : { id })
				await this.insert([row], [data])
			}
			pipe.sender = send
			this.pipes[key] = { name: pipe.name, send }
		}
		for (const def of this.defs.values()) {
			for (const trigger of def.triggers) {
				if (!this.defs.has(trigger.source)) {
					throw new ConfigError(
						`Job '${def.name}' is triggered by '${trigger.source.replace(/^spool:pipe:/, 'pipe ')}', which is not in this queue: register it in createQueue({ jobs }) or ({ pipes }) too.`,
					)
				}
				const list = this.targets.get(trigger.source) ?? []
				list.push({ def, map: trigger.map })
				this.targets.set(trigger.source, list)
			}
		}
		const scheduler = options.cronScheduler ?? cronerScheduler
		if (typeof scheduler?.next !== 'function') {
			throw new ConfigError('cronScheduler must have a next(pattern, after, timezone) method.')
		}
		const crons = new Map<string, ResolvedCron>()
		for (const def of this.defs.values()) {
			if (!def.cron) continue
			checkSchedule(scheduler, def.cron, `Job '${def.name}'`)
			crons.set(def.name, def.cron)
		}
		const workerOpts: WorkerOptions = typeof options.worker === 'object' ? options.worker : {}
		this.inline = workerOpts.inline === true
		this.pollIntervalMs = parseDuration(workerOpts.pollInterval ?? '1s', 'worker.pollInterval')
		this.leaseMs = parseDuration(workerOpts.lease ?? '30s', 'worker.lease')
		const concurrency = workerOpts.concurrency ?? options.concurrency ?? 10
		if (!(Number.isInteger(concurrency) && concurrency >= 1)) {
			throw new ConfigError(`concurrency must be a whole number >= 1, got ${concurrency}.`)
		}
		const prefetch = workerOpts.prefetch ?? 'auto'
		if (!(prefetch === 'auto' || (Number.isInteger(prefetch) && prefetch >= 0))) {
			throw new ConfigError(`worker.prefetch must be 'auto' or a whole number >= 0, got ${prefetch}.`)
		}
		const batchSize =
			workerOpts.batchSize ?? (prefetch === 'auto' ? AUTO_PREFETCH_MAX : Math.max(100, prefetch))
		if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
			throw new ConfigError(`worker.batchSize must be a whole number >= 1, got ${batchSize}.`)
		}
		const runWorker = options.worker !== false && this.defs.size > 0
		this.worker = runWorker
			? new Worker(
					{
						concurrency,
						batchSize,
						prefetch,
						pollIntervalMs: this.pollIntervalMs,
						leaseMs: this.leaseMs,
						maintenanceIntervalMs: parseDuration(
							workerOpts.maintenanceInterval ?? '1s',
							'worker.maintenanceInterval',
						),
						pruneIntervalMs: 60_000,
						retentionFor: (name) => this.retentionByName.get(name) ?? this.retention,
					},
					{
						storage: this.storage,
						clock: this.clock,
						logger: this.logger,
						jobs: this.defs,
						observer: this.observer(),
						reportError: (error, source) => this.reportError(error, source),
						isPaused: () => false,
						followUps: (job, output) => this.followUps(job, output),
						followsUp: (name) => this.targets.has(name),
						durable: this.durableServices(),
					},
				)
			: null
		this.dead = {
			list: (o = {}) => this.listJobs({ ...o, status: 'dead' }),
			replay: async (id) => {
				await this.ready
				const ids = await this.storage.replay({ ids: [id], now: this.clock.now() })
				if (ids.length > 0) this.worker?.notify()
				return ids.length > 0
			},
			replayAll: async (name) => {
				await this.ready
				const ids = await this.storage.replay({ name, now: this.clock.now() })
				if (ids.length > 0) this.worker?.notify()
				return ids.length
			},
		}
		if (this.worker && crons.size > 0) {
			this.cron = new CronRunner(crons, {
				scheduler,
				clock: this.clock,
				fire: (name, cron, at) => this.fireTick(name, cron, at),
				lastTick: (name) => this.storage.lastTick({ key: name }),
				report: (err) => this.reportError(err, 'cron'),
			})
		}
		this.ready = this.storage.open().then(() => {
			if (this.closed) return
			this.worker?.start()
			void this.cron?.start()
		})
		// A failed open surfaces where the user awaits; keep it from being an unhandled rejection here.
		this.ready.catch(() => {})
	}

	on<K extends keyof QueueEvents>(event: K, listener: (payload: QueueEvents[K]) => void): () => void {
		return this.events.on(event, listener)
	}
	once<K extends keyof QueueEvents>(event: K, listener: (payload: QueueEvents[K]) => void): () => void {
		return this.events.once(event, listener)
	}
	off<K extends keyof QueueEvents>(event: K, listener: (payload: QueueEvents[K]) => void): void {
		this.events.off(event, listener)
	}

	/** The jobs a successful run of `job` starts (its triggers), enqueued with its completion. */
	private async followUps(job: ClaimedJob, output: unknown): Promise<NewJob[]> {
		const targets = this.targets.get(job.name)
		if (!targets) return []
		const rows: NewJob[] = []
		for (const t of targets) {
			const input = t.map ? t.map(output as never) : output
			rows.push(
				await this.prepare(
					t.def.name,
					input === undefined ? NO_INPUT : input,
					{
						id: triggeredId(job.id, t.def.name),
					},
					null,
				),
			)
		}
		return rows
	}

	/** Enqueues one cron tick; the tick guard makes one process's insert win. */
	private async fireTick(name: string, cron: ResolvedCron, at: number): Promise<void> {
		const row = await this.prepare(name, cron.input, { id: `spool:cron:${name}:${at}`, runAt: at }, null)
		await this.insert([{ ...row, tick: { key: name, at } }], [cron.input])
	}

	async pause(name: string): Promise<void> {
		await this.ready
		await this.storage.setPaused({ name, paused: true, now: this.clock.now() })
	}

	async resume(name: string): Promise<void> {
		await this.ready
		await this.storage.setPaused({ name, paused: false, now: this.clock.now() })
		this.worker?.notify()
	}

	async listPaused(): Promise<string[]> {
		await this.ready
		return this.storage.listPaused()
	}

	/** What durable calls in handlers use: child jobs, step limiters, threads. */
	private durableServices(): DurableServices {
		return {
			enqueueChild: async ({ name, input, options, id, parentId }) => {
				const row = await this.prepare(
					name,
					input === undefined ? NO_INPUT : input,
					{ ...(options as EnqueueOptions | undefined), id },
					parentId,
				)
				const [r] = await this.insert([row], [input ?? null])
				return r!
			},
			limiter: (key, limit) => {
				let l = this.limiters.get(key)
				if (!l) {
					l = createLimiter(limit)
					this.limiters.set(key, l)
				}
				return l
			},
			thread: (params) => {
				this.threads ??= new ThreadPools()
				return this.threads.run(params)
			},
		}
	}

	private reportError(error: unknown, source: RuntimeErrorSource | 'listener' | 'hook' | 'cron'): void {
		const err = toError(error)
		this.logger.error({ err, source }, `spool ${source} failed: ${err.message}`)
		this.events.emit('error', { error: err, source }, undefined)
	}

	private observer(): ExecutionObserver {
		return {
			started: (job, input) => {
				if (this.events.has('started')) {
					const runAt = new Date(job.runAt ?? job.createdAt)
					const startedAt = new Date(this.clock.now())
					this.events.emit(
						'started',
						{ id: job.id, name: job.name, attempt: job.attempt, runAt, startedAt },
						undefined,
					)
				}
				const b = this.bound.get(job.name)
				// No listener: no event metadata object per job.
				if (b?.has('start')) b.emit('start', undefined, meta(job, input))
			},
			completed: (job, input, output, durationMs) => {
				if (this.events.has('completed')) {
					this.events.emit(
						'completed',
						{ id: job.id, name: job.name, attempt: job.attempt, output, durationMs },
						undefined,
					)
				}
				const b = this.bound.get(job.name)
				if (b?.hasListeners()) {
					const m = meta(job, input)
					b.emit('success', output, m)
					b.emit('settled', { output }, m)
				}
				if (this.waiters.size > 0) this.settleWaiters(job.id, (w) => w.resolve(output))
			},
			failed: (job, input, error, retryAt) => {
				this.events.emit(
					'failed',
					{
						id: job.id,
						name: job.name,
						attempt: job.attempt,
						error,
						retryAt: retryAt === null ? null : new Date(retryAt),
					},
					undefined,
				)
				const b = this.bound.get(job.name)
				const m = meta(job, input)
				b?.emit('error', error, m)
				if (retryAt === null) {
					this.events.emit('dead', { id: job.id, name: job.name, attempt: job.attempt, error }, undefined)
					b?.emit('failure', error, m)
					b?.emit('settled', { failure: error }, m)
					const failed = new JobFailedError(job.id, job.name, job.attempt, error)
					this.settleWaiters(job.id, (w) => w.reject(failed))
				}
			},
			cancelled: (job, input, error) => {
				this.events.emit('cancelled', { id: job.id, name: job.name }, undefined)
				const b = this.bound.get(job.name)
				const m = meta(job, input)
				b?.emit('cancel', error, m)
				b?.emit('settled', { cancel: error }, m)
				this.settleWaiters(job.id, (w) => w.reject(error))
			},
			leaseLost: (job, error) => {
				this.logger.warn({ jobId: job.id, name: job.name }, error.message)
				this.events.emit('leaseLost', { id: job.id, name: job.name, error }, undefined)
			},
		}
	}

	private settleWaiters(id: string, fn: (w: Waiter) => void): void {
		if (this.waiters.size === 0) return
		const set = this.waiters.get(id)
		if (!set) return
		this.waiters.delete(id)
		for (const w of set) fn(w)
	}

	private assertOpen(): void {
		if (this.closed) throw new QueueClosedError()
	}

	/**
	 * Validates, encodes and builds the row of one enqueue. Throws before anything is stored.
	 * `parentId`: the parent job; by default the job whose handler is running, if any.
	 */
	prepare(
		name: string,
		input: unknown,
		options: EnqueueOptions | undefined,
		parentId?: string | null,
	): NewJob | Promise<NewJob> {
		const def = this.defs.get(name)
		const given = input === NO_INPUT ? undefined : input
		if (!def?.inputSchema) return this.build(name, def, input, given, options, parentId)
		// Only a schema that validates asynchronously makes the enqueue wait a turn.
		const parsed = validate(def.inputSchema, given, `The input of job '${name}'`)
		return parsed instanceof Promise
			? parsed.then((p) => this.build(name, def, input, p, options, parentId))
			: this.build(name, def, input, parsed, options, parentId)
	}

	/**
	 * Prepares the rows of a batch (`name`: of every item, or each item's own). Synchronous unless an
	 * input schema validates asynchronously: a bulk enqueue makes no promise per job. Jobs of one
	 * batch share one parent (the job whose handler is running, if any).
	 */
	prepareAll(
		items: readonly { readonly name?: string; readonly input: unknown; readonly options?: EnqueueOptions }[],
		name?: string,
	): NewJob[] | Promise<NewJob[]> {
		const parent = currentRun.getStore()?.ctx.jobId ?? null
		const rows = new Array<NewJob | Promise<NewJob>>(items.length)
		let pending = false
		try {
			for (let i = 0; i < items.length; i++) {
				const item = items[i]!
				const row = this.prepare((name ?? item.name) as string, item.input, item.options, parent)
				rows[i] = row
				pending ||= row instanceof Promise
			}
		} catch (err) {
			// Validations already under way must not end as unhandled rejections.
			for (const row of rows) if (row instanceof Promise) row.catch(() => {})
			throw err
		}
		return pending ? Promise.all(rows) : (rows as NewJob[])
	}

	/** The row of one enqueue, its input already validated (`parsed`). */
	private build(
		name: string,
		def: RuntimeJob | undefined,
		input: unknown,
		parsed: unknown,
		options: EnqueueOptions | undefined,
		parentId: string | null | undefined,
	): NewJob {
		const o = options ?? {}
		if (!def && this.defs.size > 0) {
			// A queue given its jobs knows them all: an unknown name is a typo, not a remote job.
			throw new UnknownJobError(name, [...this.defs.keys()])
		}
		if (typeof name !== 'string' || name.length === 0)
			throw new UnknownJobError(String(name), [...this.defs.keys()])
		// No input given at all means "no input" (stored as null), and so does undefined for a job that
		// takes none (no schema, a handler with no parameters); any other undefined is a mistake.
		const takesNone = def !== undefined && !def.inputSchema && def.handler.length === 0
		const text =
			input === NO_INPUT || (input === undefined && takesNone)
				? ('null' as JsonText)
				: encodeJson(input, `The input of job '${name}'`)
		const now = this.clock.now()
		let runAt = now
		if (o.runAt !== undefined) {
			runAt = o.runAt instanceof Date ? o.runAt.getTime() : o.runAt
			if (!Number.isFinite(runAt))
				throw new ConfigError(`runAt must be a valid Date or epoch ms, got ${String(o.runAt)}.`)
		} else if (o.delay !== undefined) {
			runAt = now + parseDuration(o.delay, 'delay')
		}
		let maxAttempts: number
		if (o.maxAttempts !== undefined) {
			if (!(Number.isInteger(o.maxAttempts) && o.maxAttempts >= 1)) {
				throw new ConfigError(`maxAttempts must be a whole number >= 1, got ${o.maxAttempts}.`)
			}
			maxAttempts = o.maxAttempts
		} else {
			maxAttempts = def ? def.retries(input === NO_INPUT ? null : input) + 1 : 4
		}
		const priority = o.priority ?? def?.priority ?? 0
		if (!Number.isInteger(priority)) throw new ConfigError(`priority must be an integer, got ${priority}.`)
		if (o.dedupeScope !== undefined && o.dedupeScope !== 'pending' && o.dedupeScope !== 'pending+active') {
			throw new ConfigError(
				`dedupeScope must be 'pending' or 'pending+active', got '${String(o.dedupeScope)}'.`,
			)
		}
		if (o.id !== undefined) checkKey('id', o.id)
		if (o.dedupeKey !== undefined) checkKey('dedupeKey', o.dedupeKey)
		if (o.idempotencyKey !== undefined) checkKey('idempotencyKey', o.idempotencyKey)
		const parent = parentId === undefined ? (currentRun.getStore()?.ctx.jobId ?? null) : parentId
		const flowInput = parsed === undefined ? null : parsed
		return {
			id: o.id ?? this.nextId(),
			name,
			input: text,
			priority,
			runAt,
			maxAttempts,
			dedupeKey: o.dedupeKey ?? null,
			dedupeScope: o.dedupeScope ?? 'pending+active',
			idempotencyKey: o.idempotencyKey ?? null,
			parentId: parent,
			backoff: o.backoff === undefined ? null : encodeBackoff(o.backoff),
			concurrency: def?.concurrency?.(flowInput) ?? null,
			throttle: def?.throttle?.(flowInput) ?? null,
			debounce: def?.debounce?.(flowInput) ?? null,
		}
	}

	/** Stores prepared jobs and does what follows an enqueue. */
	async insert(rows: readonly NewJob[], inputs: readonly unknown[], tx?: TransactionClient) {
		await this.ready
		this.assertOpen()
		if (tx !== undefined && !this.storage.capabilities.transactionalEnqueue) {
			throw new ConfigError(
				`The ${this.storage.description} storage cannot enqueue inside your transaction (tx): only the PostgreSQL storage can.`,
			)
		}
		// This process's worker waiting with free slots claims in the enqueue's own transaction: a job
		// enqueued here starts after one commit, not two (the enqueue's, then the claim's).
		const request =
			tx === undefined && !this.inline && this.storage.enqueueAndClaim
				? (this.worker?.takeClaim() ?? null)
				: null
		let results: EnqueueResult[]
		let claimed: ClaimedJob[] = []
		if (request) {
			try {
				;({ results, claimed } = await this.storage.enqueueAndClaim!({
					jobs: rows,
					now: this.clock.now(),
					claim: request,
				}))
			} catch (err) {
				this.worker!.gotClaim(null, request)
				throw err
			}
		} else {
			results = await this.storage.enqueue(
				tx === undefined ? { jobs: rows, now: this.clock.now() } : { jobs: rows, now: this.clock.now(), tx },
			)
		}
		try {
			for (let i = 0; i < results.length; i++) {
				const r = results[i]!
				if (r.status !== 'created') continue
				const row = rows[i]!
				this.events.emit('enqueued', { id: r.id, name: row.name }, undefined)
				const b = this.bound.get(row.name)
				if (b) {
					await b.trigger(r.id, inputs[i])
				}
			}
		} finally {
			// The claimed jobs start after their `enqueued` events, whatever happened meanwhile.
			if (request) this.worker!.gotClaim(claimed, request)
		}
		if (!request && this.worker && results.some((r) => r.status === 'created')) {
			this.worker.notify()
			// Inline mode runs the work now, except from inside a handler (it would wait on itself).
			if (this.inline && !currentRun.getStore()) await this.worker.drain()
		}
		return results
	}

	async enqueue(name: string, ...args: [input?: unknown, options?: EnqueueOptions]): Promise<string | null> {
		this.assertOpen()
		const input = args.length === 0 ? NO_INPUT : args[0]
		const row = await this.prepare(name, input, args[1])
		const [r] = await this.insert([row], [input === NO_INPUT ? null : input], args[1]?.tx)
		return r!.status === 'deduped' || r!.status === 'throttled' ? null : r!.id
	}

	async enqueueMany(
		items: readonly { name: string; input: unknown; options?: EnqueueOptions }[],
	): Promise<(string | null)[]> {
		this.assertOpen()
		const tx = sharedTx(items)
		const rows = await this.prepareAll(items)
		const results = await this.insert(
			rows,
			items.map((i) => i.input),
			tx,
		)
		return results.map((r) => (r.status === 'deduped' || r.status === 'throttled' ? null : r.id))
	}

	async claimOrEnqueue(
		name: string,
		input: unknown,
		options: EnqueueOptions & { dedupeKey: string },
	): Promise<ClaimHandle<unknown> | null> {
		this.assertOpen()
		if (!options?.dedupeKey) throw new ConfigError('claimOrEnqueue needs a dedupeKey.')
		const row = await this.prepare(name, input === undefined ? NO_INPUT : input, options)
		await this.ready
		const def = this.defs.get(name)
		const leaseMs = def?.leaseMs ?? this.leaseMs
		const r = await this.storage.claimOrEnqueue({
			// Single-flight decides by the dedupe key alone: no throttle or debounce on this path.
			job: { ...row, dedupeKey: options.dedupeKey, throttle: null, debounce: null },
			owner: this.worker?.owner ?? 'claimOrEnqueue',
			leaseMs,
			now: this.clock.now(),
		})
		if (r.status === 'enqueued') this.worker?.notify()
		if (r.status !== 'claimed') return null
		return this.claimHandle(r.job, def)
	}

	private claimHandle(job: ClaimedJob, def: RuntimeJob | undefined): ClaimHandle<unknown> {
		const release = this.worker?.adopt(job) ?? (() => {})
		const token = job.lease.token
		let done = false
		const settle = async (kind: 'completed' | 'retry' | 'dead', value: unknown) => {
			if (done) throw new ConfigError(`Job ${job.id} was already settled by this handle.`)
			done = true
			release()
			const now = this.clock.now()
			const input = decodeJson(job.input)
			if (kind === 'completed') {
				const output = encodeJson(value === undefined ? null : value, `The output of job '${job.name}'`)
				await this.storage.settle({ outcomes: [{ kind, id: job.id, token, output }], now })
				this.settleWaiters(job.id, (w) => w.resolve(value))
				return
			}
			const error = toError(value)
			const stored = {
				attempt: job.attempt,
				name: error.name,
				message: error.message,
				stack: error.stack,
				at: now,
			}
			if (kind === 'retry' && job.attempt < job.maxAttempts) {
				const policy = job.backoff
					? resolveBackoff(decodeJson<BackoffOption>(job.backoff), job.name)
					: def?.backoff
				const runAt = now + (policy ? policy.delay(job.attempt, input) : 1000)
				await this.storage.settle({
					outcomes: [{ kind: 'retry', id: job.id, token, error: stored, runAt }],
					now,
				})
				return
			}
			await this.storage.settle({ outcomes: [{ kind: 'dead', id: job.id, token, error: stored }], now })
			this.settleWaiters(job.id, (w) => w.reject(new JobFailedError(job.id, job.name, job.attempt, error)))
		}
		return {
			id: job.id,
			input: decodeJson(job.input),
			attempt: job.attempt,
			complete: (output) => settle('completed', output),
			fail: (reason) => settle('retry', reason),
			failFatal: (reason) => settle('dead', reason),
		}
	}

	async getJob(id: string): Promise<JobInfo | null> {
		await this.ready
		const row = await this.storage.getJob({ id })
		return row ? toInfo(row) : null
	}

	async getSteps(id: string): Promise<StepRow[]> {
		await this.ready
		return this.storage.getSteps({ jobId: id })
	}

	async listJobs(
		options: {
			name?: string
			status?: JobStatus
			parentId?: string
			limit?: number
			cursor?: string | null
		} = {},
	): Promise<JobList> {
		await this.ready
		const limit = options.limit ?? 50
		if (!(Number.isInteger(limit) && limit >= 1 && limit <= 1000)) {
			throw new ConfigError(`limit must be a whole number from 1 to 1000, got ${limit}.`)
		}
		const page = await this.storage.listJobs({ ...options, limit })
		return { jobs: page.jobs.map(toInfo), nextCursor: page.nextCursor }
	}

	async getStats(name?: string): Promise<QueueStats> {
		await this.ready
		return this.storage.getStats({ name })
	}

	async cancel(id: string): Promise<CancelOutcome> {
		await this.ready
		const r = await this.storage.cancel({ id, now: this.clock.now() })
		if (r.status === 'not-found') return r
		if (r.status === 'finished') {
			this.logger.info(
				{ jobId: id, status: r.current },
				`Job ${id} is already ${r.current}: nothing to cancel.`,
			)
			return { status: 'already-finished', current: r.current }
		}
		// Stop it here if this process runs it; other processes learn at their next heartbeat.
		const runningHere = this.worker?.cancelLocal(id) ?? false
		const row = await this.storage.getJob({ id })
		if (!runningHere) {
			const error = new CancelledError()
			this.events.emit('cancelled', { id, name: row?.name ?? '' }, undefined)
			const def = row ? this.defs.get(row.name) : undefined
			if (row && def) {
				// No process runs it: its hooks run here, where it was cancelled.
				const input = decodeJson(row.input)
				const b = this.bound.get(row.name)
				const m = { id, input, attempt: row.attempt }
				b?.emit('cancel', error, m)
				b?.emit('settled', { cancel: error }, m)
				for (const hook of [
					() => def.hooks.onCancel?.(input, error),
					() => def.hooks.onSettled?.(input, { cancel: error }),
				]) {
					try {
						await hook()
					} catch (err) {
						this.reportError(err, 'hook')
					}
				}
			}
			this.settleWaiters(id, (w) => w.reject(error))
		}
		await this.cancelChildren(id)
		return r
	}

	/** Cancels the unfinished children of a cancelled job, and theirs. */
	private async cancelChildren(parentId: string): Promise<void> {
		for (const status of ['pending', 'waiting', 'active'] as const) {
			for (;;) {
				const page = await this.storage.listJobs({ parentId, status, limit: 100 })
				for (const child of page.jobs) await this.cancel(child.id)
				if (page.jobs.length < 100) break
			}
		}
	}

	/** Cancels the unfinished runs of a job whose input contains `pattern`. */
	async cancelByInput(name: string, pattern: unknown): Promise<(CancelOutcome & { id: string })[]> {
		await this.ready
		const out: (CancelOutcome & { id: string })[] = []
		for (const status of ['pending', 'waiting', 'active'] as const) {
			let cursor: string | null = null
			do {
				const page = await this.storage.listJobs({ name, status, limit: 500, cursor })
				for (const row of page.jobs) {
					if (matchesPattern(pattern, decodeJson(row.input)))
						out.push({ id: row.id, ...(await this.cancel(row.id)) })
				}
				cursor = page.nextCursor
			} while (cursor)
		}
		return out
	}

	/** Resolves with a job's output, from a local notification or by polling the storage. */
	async result(id: string, options: { timeout?: Duration } = {}): Promise<unknown> {
		await this.ready
		const timeoutMs = options.timeout === undefined ? undefined : parseDuration(options.timeout, 'timeout')
		return new Promise<unknown>((resolve, reject) => {
			let pollTimer: ReturnType<Clock['setTimeout']> | null = null
			let timeoutTimer: ReturnType<typeof setTimeout> | undefined
			const finish = () => {
				if (pollTimer) this.clock.clearTimeout(pollTimer)
				clearTimeout(timeoutTimer)
				set.delete(waiter)
				if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id)
			}
			const waiter: Waiter = {
				resolve: (v) => {
					finish()
					resolve(v)
				},
				reject: (e) => {
					finish()
					reject(e)
				},
			}
			const set = this.waiters.get(id) ?? new Set<Waiter>()
			this.waiters.set(id, set)
			set.add(waiter)
			if (timeoutMs !== undefined) {
				timeoutTimer = setTimeout(
					() =>
						waiter.reject(
							new TimeoutError(
								`No outcome for job ${id} within ${timeoutMs} ms (it may still run).`,
								timeoutMs,
							),
						),
					timeoutMs,
				)
			}
			const check = async () => {
				pollTimer = null
				try {
					const row = await this.storage.getJob({ id })
					if (!row) return waiter.reject(new JobNotFoundError(id))
					if (isTerminal(row.status)) return settleFromRow(row, waiter)
				} catch (err) {
					this.reportError(err, 'result')
				}
				if (set.has(waiter) && !this.closed) pollTimer = this.clock.setTimeout(check, this.pollIntervalMs)
			}
			void check()
		})
	}

	async drain(): Promise<void> {
		await this.ready
		await this.cron?.idle()
		await this.worker?.drain()
	}

	async maintain(): Promise<void> {
		await this.ready
		await this.worker?.maintain()
	}

	close(options: { timeout?: Duration } = {}): Promise<void> {
		this.closing ??= (async () => {
			this.closed = true
			this.cron?.stop()
			const timeoutMs = parseDuration(options.timeout ?? '10s', 'close timeout')
			try {
				await this.ready
			} catch {
				// Never opened: nothing to stop.
			}
			await this.worker?.close(timeoutMs)
			await this.threads?.close()
			for (const [, set] of this.waiters) for (const w of set) w.reject(new QueueClosedError())
			this.waiters.clear()
			await this.storage.close()
		})()
		return this.closing
	}
}

/** An id or key given to an enqueue: a string of 1 to 512 characters. */
function checkKey(key: string, value: unknown): void {
	if (typeof value !== 'string' || value.length === 0 || value.length > 512) {
		throw new ConfigError(`${key} must be a string of 1 to 512 characters.`)
	}
}

/** Checks a per-enqueue retry policy now (a bad one is a ConfigError here, not at retry time). */
function encodeBackoff(option: Exclude<BackoffOption, BackoffFunction>): JsonText {
	if (typeof option === 'function')
		throw new ConfigError('An enqueue backoff cannot be a function: it is stored.')
	resolveBackoff(option, 'enqueue option')
	return encodeJson(option, 'The backoff option')
}

function settleFromRow(row: JobRow, waiter: Waiter): void {
	if (row.status === 'completed') {
		waiter.resolve(row.output === null ? undefined : decodeJson(row.output))
		return
	}
	if (row.status === 'cancelled') {
		waiter.reject(new CancelledError())
		return
	}
	const last = row.errors[row.errors.length - 1]
	const cause = Object.assign(new Error(last?.message ?? 'unknown error'), { name: last?.name ?? 'Error' })
	waiter.reject(new JobFailedError(row.id, row.name, row.attempt, cause))
}

function meta(job: ClaimedJob, input: unknown): JobEventMeta<unknown> {
	return { id: job.id, input, attempt: job.attempt }
}

function resolveRetention(
	r: Retention | undefined,
	base: { completed: number; cancelled: number; dead: number },
	what: string,
): { completed: number; cancelled: number; dead: number } {
	return {
		completed: r?.completed === undefined ? base.completed : parseDuration(r.completed, `${what}.completed`),
		cancelled: r?.cancelled === undefined ? base.cancelled : parseDuration(r.cancelled, `${what}.cancelled`),
		dead: r?.dead === undefined ? base.dead : parseDuration(r.dead, `${what}.dead`),
	}
}

/** Decodes a stored row for the API. */
export function toInfo(row: JobRow): JobInfo {
	return {
		id: row.id,
		name: row.name,
		status: row.status,
		input: decodeJson<JsonValue>(row.input),
		output: row.output === null ? undefined : decodeJson<JsonValue>(row.output),
		priority: row.priority,
		runAt: new Date(row.runAt),
		attempt: row.attempt,
		maxAttempts: row.maxAttempts,
		errors: row.errors,
		logs: row.logs,
		dedupeKey: row.dedupeKey,
		idempotencyKey: row.idempotencyKey,
		parentId: row.parentId,
		leaseOwner: row.lease?.owner ?? null,
		createdAt: new Date(row.createdAt),
		updatedAt: new Date(row.updatedAt),
		startedAt: row.startedAt === null ? null : new Date(row.startedAt),
		finishedAt: row.finishedAt === null ? null : new Date(row.finishedAt),
	}
}

class BoundJobImpl extends TypedEmitter<JobEvents<unknown>, JobEventMeta<unknown>> {
	readonly name: string

	constructor(
		private readonly queue: QueueImpl<unknown, unknown>,
		private readonly def: RuntimeJob,
	) {
		super((err, event) => queue.logger.error({ err, event }, `A listener of '${def.name}.${event}' threw.`))
		this.name = def.name
	}

	hasListeners(): boolean {
		return this.has('success') || this.has('settled')
	}

	/** Runs onTrigger and the trigger event after a run of this job was stored. */
	async trigger(id: string, input: unknown): Promise<void> {
		this.emit('trigger', undefined, { id, input, attempt: 0 })
		if (this.def.hooks.onTrigger) {
			try {
				await this.def.hooks.onTrigger(input)
			} catch (err) {
				this.queue.logger.error({ err, jobId: id }, `The onTrigger hook of job '${this.name}' threw.`)
			}
		}
	}

	private handle(r: EnqueueResult, row?: NewJob): JobHandle<unknown> {
		if (r.status === 'throttled' || r.id === null) {
			const error = new ThrottledError(this.name, row?.throttle?.key ?? this.name)
			return { id: row?.id ?? '', name: this.name, status: r.status, result: () => Promise.reject(error) }
		}
		const id = r.id
		return {
			id,
			name: this.name,
			status: r.status,
			result: (o) => this.queue.result(id, o ?? {}),
		}
	}

	into(map?: (output: unknown) => unknown): Trigger<unknown> {
		return { kind: 'spool.trigger', source: this.name, map: map as ((v: never) => unknown) | undefined }
	}

	async start(...args: [input?: unknown, options?: EnqueueOptions]): Promise<JobHandle<unknown>> {
		const active = currentRun.getStore()
		if (active) {
			// Inside a handler: a child job, started once across replays.
			const id = await active.durable().child<string>({
				name: this.name,
				input: args[0],
				options: args[1] as Record<string, unknown> | undefined,
				wait: false,
			})
			return this.handle({ status: 'created', id })
		}
		const input = args.length === 0 ? NO_INPUT : args[0]
		const row = await this.queue.prepare(this.name, input, args[1])
		const [r] = await this.queue.insert([row], [input === NO_INPUT ? null : input], args[1]?.tx)
		return this.handle(r!, row)
	}

	run(...args: [input?: unknown, options?: EnqueueOptions]): Promise<unknown> {
		const active = currentRun.getStore()
		if (active) {
			// Inside a handler: a durable child; its index is taken now, before any await.
			return active.durable().child({
				name: this.name,
				input: args[0],
				options: args[1] as Record<string, unknown> | undefined,
				wait: true,
			})
		}
		return this.start(...args).then((h) => h.result())
	}

	cancel(input: unknown): Promise<(CancelOutcome & { id: string })[]> {
		return this.queue.cancelByInput(this.name, input)
	}

	waitFor(match: unknown, options?: WaitForOptions): Promise<unknown> {
		const active = currentRun.getStore()
		if (!active) {
			return Promise.reject(
				new ConfigError(
					`jobs.${this.name}.waitFor was called outside a job handler: it works only inside one.`,
				),
			)
		}
		return active.durable().waitFor(jobWaitSpec(this.name, match, options))
	}

	async startMany(
		items: readonly { input: unknown; options?: EnqueueOptions }[],
	): Promise<JobHandle<unknown>[]> {
		const tx = sharedTx(items)
		const rows = await this.queue.prepareAll(items, this.name)
		const results = await this.queue.insert(
			rows,
			items.map((i) => i.input),
			tx,
		)
		return results.map((r, i) => this.handle(r, rows[i]!))
	}
}
