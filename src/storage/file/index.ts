/**
 * `spool/file`: the file log. Jobs live in memory, as in the memory storage, and every change is
 * appended to a log on disk in binary frames; opening the log replays it. One process owns a log.
 *
 * ```ts
 * import { fileLog } from 'spool/file'
 * const queue = createQueue({ jobs, storage: fileLog({ path: '.spool/jobs.log' }) })
 * ```
 */
import { isAbsolute, resolve } from 'node:path'
import { ConfigError } from '../../errors.js'
import type { JsonText } from '../../json.js'
import { consoleLogger, type Logger } from '../../logger.js'
import type {
	AttemptError,
	CancelResult,
	ClaimedJob,
	ClaimOrEnqueueResult,
	EnqueueResult,
	JobPage,
	JobRow,
	JobStatus,
	NewJob,
	Outcome,
	PublishedEvent,
	QueueStats,
	SettleResult,
	StepRow,
	StepState,
	Storage,
	WaiterRow,
} from '../contract.js'
import { type Durability, Engine, type OpenReport } from './engine.js'

export type { Durability, OpenReport } from './engine.js'

/** Options of the file log. */
export interface FileLogOptions {
	/** The log file. Its folder is created if missing; `<path>.lock` marks the owning process. */
	readonly path: string
	/**
	 * When a change is on disk before the call that made it resolves:
	 * - `fsync` (default): after the fdatasync of its commit group. Changes made at the same time
	 *   share one write and one fdatasync (group commit).
	 * - `interval`: written at once, fdatasync'd every `intervalMs`: a power loss can lose the last
	 *   `intervalMs` of changes; a crash of the process alone loses nothing.
	 * - `none`: written at once, never fdatasync'd by spool (the OS writes it back when it likes):
	 *   a power loss can lose the last moments of changes. Neither mode can corrupt the log: a torn
	 *   tail is cut off at open.
	 */
	readonly durability?: Durability
	/** The fdatasync period of `durability: 'interval'`, in ms. Default 1000. */
	readonly intervalMs?: number
	/**
	 * Compact when the log has grown by this many bytes since it was last compacted (or by half
	 * the snapshot's size, if more): the live jobs are written as a snapshot to a new file that
	 * replaces the log. Finished jobs already pruned (past their retention) are not in it. A log
	 * past this size when opened is compacted at its first write. Default 64 MiB.
	 */
	readonly compactAt?: number
	/** How many `ctx.log` lines to keep per job. Default 100. */
	readonly maxLogLines?: number
	/**
	 * At most this many commit groups wait for their fdatasync at once (`fsync` mode). More than
	 * one lets a group be written while the previous one syncs. Default 2.
	 */
	readonly pipeline?: number
	/** Where the warning about a torn tail goes. Default: stderr. */
	readonly logger?: Logger
}

const engines = new Map<string, Engine>()

/**
 * Creates a file log storage over the log at `path`.
 *
 * Handles on the same path in one process share one log and one state; another process opening it
 * gets `StorageUnavailableError` naming the owner's PID, until that process closes it or dies.
 */
export function fileLog(options: FileLogOptions | string): FileLogStorage {
	const opts = typeof options === 'string' ? { path: options } : options
	return new FileLogStorage(opts)
}

function positive(value: number | undefined, fallback: number, what: string): number {
	if (value === undefined) return fallback
	if (!Number.isFinite(value) || value <= 0) {
		throw new ConfigError(`fileLog ${what} must be a positive number, got ${String(value)}.`)
	}
	return value
}

/** A handle on a file log; see `fileLog`. */
export class FileLogStorage implements Storage {
	readonly description: string
	readonly capabilities = { push: false, multiProcess: false } as const
	private readonly path: string
	private readonly options: FileLogOptions
	private engine: Engine | null = null
	private opening: Promise<void> | null = null

	constructor(options: FileLogOptions) {
		if (typeof options.path !== 'string' || options.path === '') {
			throw new ConfigError('fileLog needs a `path`: the file to keep the log in.')
		}
		const durability = options.durability ?? 'fsync'
		if (durability !== 'fsync' && durability !== 'interval' && durability !== 'none') {
			throw new ConfigError(
				`fileLog durability must be 'fsync', 'interval' or 'none', got ${JSON.stringify(durability)}.`,
			)
		}
		positive(options.intervalMs, 1000, 'intervalMs')
		positive(options.compactAt, 1, 'compactAt')
		positive(options.pipeline, 1, 'pipeline')
		this.path = isAbsolute(options.path) ? options.path : resolve(options.path)
		this.options = options
		this.description = `file:${this.path}`
	}

	/** What the last replay of this log found (after `open`). */
	get openReport(): OpenReport | null {
		return this.engine?.report ?? null
	}

	/** The log's size in bytes and the compactions done since it was opened (after `open`). */
	get stats(): { readonly bytes: number; readonly compactions: number } {
		return { bytes: this.e.bytes, compactions: this.e.compactions }
	}

	async open(): Promise<void> {
		if (this.engine) return
		this.opening ??= this.attach().finally(() => {
			this.opening = null
		})
		return this.opening
	}

	private async attach(): Promise<void> {
		let engine = engines.get(this.path)
		if (!engine) {
			const o = this.options
			engine = new Engine({
				path: this.path,
				durability: o.durability ?? 'fsync',
				intervalMs: o.intervalMs ?? 1000,
				compactAt: o.compactAt ?? 64 * 1024 * 1024,
				maxLogLines: o.maxLogLines ?? 100,
				pipeline: Math.floor(o.pipeline ?? 2),
				logger: o.logger ?? consoleLogger(),
			})
			engines.set(this.path, engine)
			const opened = engine
			engine.refs++
			try {
				await (openings.get(opened) ?? track(opened))
			} catch (err) {
				engines.delete(this.path)
				throw err
			}
		} else {
			engine.refs++
			try {
				await (openings.get(engine) ?? Promise.resolve())
			} catch (err) {
				engine.refs--
				throw err
			}
		}
		this.engine = engine
	}

	async close(): Promise<void> {
		if (this.opening) await this.opening.catch(() => {})
		const engine = this.engine
		if (!engine) return
		this.engine = null
		engine.refs--
		if (engine.refs > 0) return
		if (engines.get(this.path) === engine) engines.delete(this.path)
		await engine.close()
	}

	private get e(): Engine {
		if (!this.engine) {
			throw new ConfigError(`The file log ${this.path} is not open: call open() first (createQueue does).`)
		}
		return this.engine
	}

	/** Runs a change, then waits until it is durable. */
	private async change<T>(run: (e: Engine) => Promise<T>): Promise<T> {
		const e = this.e
		e.check()
		const result = await run(e)
		await e.commit()
		return result
	}

	enqueue(params: { jobs: readonly NewJob[]; now: number }): Promise<EnqueueResult[]> {
		return this.change((e) => e.mem.enqueue(params))
	}

	/**
	 * Claims without waiting for the claim to be durable: it is written with the next group. If
	 * the process dies first, the job is pending again with the attempt not counted; nothing else
	 * depends on it, as the job's outcome is written after it.
	 */
	async claim(params: {
		names: readonly string[]
		owner: string
		limit: number
		leaseMs: number
		now: number
	}): Promise<ClaimedJob[]> {
		const e = this.e
		e.check()
		return e.mem.claim(params)
	}

	claimOrEnqueue(params: {
		job: NewJob & { dedupeKey: string }
		owner: string
		leaseMs: number
		now: number
	}): Promise<ClaimOrEnqueueResult> {
		return this.change((e) => e.mem.claimOrEnqueue(params))
	}

	/** Leases live in memory only: on open, every lease of the previous process is expired. */
	async heartbeat(params: {
		leases: readonly { id: string; token: string }[]
		leaseMs: number
		now: number
	}): Promise<string[]> {
		const e = this.e
		e.check()
		return e.mem.heartbeat(params)
	}

	settle(params: {
		outcomes: readonly Outcome[]
		logs?: ReadonlyMap<string, readonly string[]>
		now: number
	}): Promise<SettleResult[]> {
		return this.change((e) => e.mem.settle(params))
	}

	reap(params: {
		now: number
		limit: number
	}): Promise<{ requeued: string[]; dead: string[]; woken: string[] }> {
		return this.change((e) => e.mem.reap(params))
	}

	wake(params: { ids: readonly string[]; now: number }): Promise<string[]> {
		return this.change((e) => e.mem.wake(params))
	}

	cancel(params: { id: string; now: number }): Promise<CancelResult> {
		return this.change((e) => e.mem.cancel(params))
	}

	replay(params: ({ ids: readonly string[] } | { name: string }) & { now: number }): Promise<string[]> {
		return this.change((e) => e.mem.replay(params))
	}

	prune(params: {
		statuses: readonly ('completed' | 'dead' | 'cancelled')[]
		before: number
		limit: number
		name?: string
	}): Promise<number> {
		return this.change((e) => e.mem.prune(params))
	}

	setPaused(params: { name: string; paused: boolean; now: number }): Promise<void> {
		return this.change((e) => e.mem.setPaused(params))
	}

	async listPaused(): Promise<string[]> {
		return this.e.mem.listPaused()
	}

	async lastTick(params: { key: string }): Promise<number | null> {
		return this.e.mem.lastTick(params)
	}

	async getJob(params: { id: string }): Promise<JobRow | null> {
		return this.e.mem.getJob(params)
	}

	async listJobs(params: {
		name?: string
		status?: JobStatus
		parentId?: string
		limit: number
		cursor?: string | null
	}): Promise<JobPage> {
		return this.e.mem.listJobs(params)
	}

	async getStats(params: { name?: string }): Promise<QueueStats> {
		return this.e.mem.getStats(params)
	}

	async getSteps(params: { jobId: string }): Promise<StepRow[]> {
		return this.e.mem.getSteps(params)
	}

	saveStep(params: {
		jobId: string
		token: string
		stepId: string
		name: string
		state: StepState
		index?: number | null
		output: JsonText | null
		error: AttemptError | null
		now: number
	}): Promise<boolean> {
		return this.change((e) => e.mem.saveStep(params))
	}

	addWaiter(params: {
		waiter: { id: string; jobId: string; topic: string; match: JsonText | null }
		token: string
		now: number
	}): Promise<boolean> {
		return this.change((e) => e.mem.addWaiter(params))
	}

	getWaiter(params: { id: string }): Promise<WaiterRow | null> {
		return this.e.mem.getWaiter(params)
	}

	trimWaiter(params: { id: string; drop: number | 'all' }): Promise<void> {
		return this.change((e) => e.mem.trimWaiter(params))
	}

	publish(params: { event: PublishedEvent; now: number }): Promise<string[]> {
		return this.change((e) => e.mem.publish(params))
	}
}

const openings = new WeakMap<Engine, Promise<void>>()

function track(engine: Engine): Promise<void> {
	const p = engine.open()
	openings.set(engine, p)
	p.catch(() => {})
	return p
}
