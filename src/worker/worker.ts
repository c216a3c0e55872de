/**
 * The worker: a fetch loop that claims jobs in batches into free slots, the executions it runs,
 * the heartbeats that keep their leases, and maintenance (the reaper, wake-ups, pruning).
 *
 * The fetch loop is an explicit mode machine:
 *   stopped ─start─▶ fetching ─got fewer than asked─▶ idle ─notify / poll timer─▶ fetching
 *                       │ no free slot                  ▲
 *                       ▼                               │
 *                      full ─a slot frees─▶ fetching ───┘
 *   fetching ─storage error─▶ backoff ─timer─▶ fetching
 *   any ─close─▶ stopped
 */
import { hostname } from 'node:os'
import { LeaseLostError } from '../errors.js'
import { createLeaseToken } from '../id.js'
import type { RuntimeJob } from '../job.js'
import type { Logger } from '../logger.js'
import type { ClaimedJob, ClaimRequest, NewJob, Storage } from '../storage/contract.js'
import type { Clock, TimerHandle } from '../time.js'
import { Completer } from './completer.js'
import {
	abortErrors,
	type DurableServices,
	Execution,
	type ExecutionDeps,
	type ExecutionObserver,
} from './executor.js'

/** Where a runtime error came from. */
export type RuntimeErrorSource = 'claim' | 'settle' | 'heartbeat' | 'reap' | 'prune' | 'result'

/** The worker's settings, resolved by the queue. */
export interface WorkerSettings {
	/** Jobs run at once by this process. */
	readonly concurrency: number
	/** The most jobs one claim takes. */
	readonly batchSize: number
	/**
	 * Jobs claimed ahead of free slots, held (and heartbeated) until a slot frees. 0: none. `'auto'`:
	 * a target that adapts to how fast jobs finish (see `AUTO_PREFETCH_MAX`).
	 */
	readonly prefetch: number | 'auto'
	/** How often to look for jobs enqueued by other processes. */
	readonly pollIntervalMs: number
	/** The lease of a claim, for jobs that do not set their own. */
	readonly leaseMs: number
	/** How often the reaper runs. */
	readonly maintenanceIntervalMs: number
	/** How often finished jobs past retention are pruned. */
	readonly pruneIntervalMs: number
	/** Retention per status in ms, for a job name. */
	readonly retentionFor: (name: string) => { completed: number; cancelled: number; dead: number }
}

/** What the worker needs from the queue. */
export interface WorkerDeps {
	readonly storage: Storage
	readonly clock: Clock
	readonly logger: Logger
	readonly jobs: ReadonlyMap<string, RuntimeJob>
	readonly observer: ExecutionObserver
	readonly reportError: (error: unknown, where: RuntimeErrorSource) => void
	/** Names not to claim (paused). */
	readonly isPaused: (name: string) => boolean
	/** The jobs a successful run starts (triggers), enqueued with its completion. */
	readonly followUps?: (job: ClaimedJob, output: unknown) => Promise<NewJob[]>
	/** Whether a completion of this job name starts jobs; absent: assume so when `followUps` is set. */
	readonly followsUp?: (name: string) => boolean
	/** Child jobs, step limiters and threads for durable calls. */
	readonly durable: DurableServices
}

type FetchMode = 'stopped' | 'fetching' | 'idle' | 'full' | 'backoff'

/**
 * `prefetch: 'auto'`: the most jobs held ahead. The target starts at 0 (claims take free slots
 * only), grows fourfold after a full claim that came back to an empty buffer and at least half the
 * slots empty (jobs finish faster than claims arrive), and halves when a job started after
 * waiting more than `AUTO_PREFETCH_WAIT_MS` in the buffer (jobs are slow: do not hoard them).
 */
export const AUTO_PREFETCH_MAX = 1000
/** `prefetch: 'auto'`: a buffered job that waited longer than this shrinks the target. */
const AUTO_PREFETCH_WAIT_MS = 100

export class Worker {
	/** This process's identity in leases: host, pid and a random part. */
	readonly owner = `${hostname()}:${process.pid}:${createLeaseToken().slice(0, 6)}`
	private mode: FetchMode = 'stopped'
	/** Executions holding a slot (`holdsSlot`): from launch until they hand their outcome to the completer. */
	private running = 0
	/** Claimed ahead (`prefetch`): leased to this process, started in order as slots free. */
	private buffered: ClaimedJob[] = []
	/** When each buffered job was claimed (performance.now()), in the same order. */
	private bufferedAt: number[] = []
	/** How many jobs to hold ahead now: `settings.prefetch`, or the adaptive target of `'auto'`. */
	private prefetchTarget: number
	/** The last claim took all it asked for (`prefetch: 'auto'` grows only inside a backlog). */
	private previousClaimFull = false
	/**
	 * Every execution not yet concluded (outcome written, hooks run): heartbeated, awaited by close.
	 * A list threaded through the executions (`prevLive`/`nextLive`), newest first: a job costs no
	 * map entry; the rare lookups by id (cancel, lost lease) walk it.
	 */
	private liveHead: Execution | null = null
	private liveCount = 0
	private liveWaiters: (() => void)[] = []
	/** The storage claims with settles (`settleAndClaim`): the completer refills freed slots. */
	private readonly claimsWithSettle: boolean
	/** Jobs held outside a slot (claimOrEnqueue handles): heartbeated, not counted. */
	private readonly adopted = new Map<string, ClaimedJob>()
	private readonly completer: Completer
	/** What every execution needs, made once: a job allocates no closures of its own for it. */
	private readonly executionDeps: ExecutionDeps
	private pollTimer: TimerHandle | null = null
	private heartbeatTimer: TimerHandle | null = null
	private maintenanceTimer: TimerHandle | null = null
	private lastPrune = 0
	private wakeRequested = false
	private refillScheduled = false
	private backoffMs = 0
	private idleWaiters: (() => void)[] = []
	private lastClaimFull = false
	private unsubscribe: (() => void) | null = null
	private claimLeaseMs = 0
	/** The earliest wake time of a job this process suspended, and its timer. */
	private wakeTimer: { at: number; handle: TimerHandle } | null = null

	constructor(
		private readonly settings: WorkerSettings,
		private readonly deps: WorkerDeps,
	) {
		this.claimsWithSettle = typeof deps.storage.settleAndClaim === 'function'
		this.prefetchTarget = settings.prefetch === 'auto' ? 0 : settings.prefetch
		this.completer = new Completer(
			deps.storage,
			deps.clock,
			(err) => deps.reportError(err, 'settle'),
			this.claimsWithSettle
				? { take: () => this.takeClaim(), give: (claimed, request) => this.gotClaim(claimed, request) }
				: null,
			() => this.written(),
		)
		const completedRemoved = new Map<string, boolean>()
		this.executionDeps = {
			storage: deps.storage,
			clock: deps.clock,
			logger: deps.logger,
			observer: deps.observer,
			settle: (execution, outcome) => {
				this.vacate(execution)
				return this.completer.add(outcome)
			},
			write: (execution, outcome) => {
				this.vacate(execution)
				this.completer.push(outcome, execution)
			},
			ended: (e) => this.ended(e),
			addLogs: (id, lines) => this.completer.addLogs(id, lines),
			removeOnComplete: (d) => {
				let remove = completedRemoved.get(d.name)
				if (remove === undefined) {
					remove = settings.retentionFor(d.name).completed === 0
					completedRemoved.set(d.name, remove)
				}
				return remove
			},
			heartbeat: (e) => this.heartbeatOne(e),
			followUps: deps.followUps,
			followsUp: deps.followsUp,
			durable: deps.durable,
			wakeAt: (at) => this.wakeAt(at),
		}
	}

	/** Jobs running now. */
	get active(): number {
		return this.running
	}

	start(): void {
		if (this.mode !== 'stopped') return
		this.mode = 'idle'
		this.claimLeaseMs = this.shortestLease()
		this.lastPrune = this.deps.clock.now()
		this.scheduleHeartbeat()
		this.scheduleMaintenance(0)
		// Storages that can push say when other processes enqueue; the poll remains the backstop.
		this.unsubscribe = this.deps.storage.subscribe?.(() => this.notify()) ?? null
		this.notify()
	}

	/** Something may be due: fetch now instead of waiting for the poll. */
	notify(): void {
		switch (this.mode) {
			case 'idle':
				void this.fetch()
				break
			case 'fetching':
				this.wakeRequested = true
				break
			default:
				// full: a freed slot fetches; backoff: the timer fetches; stopped: nothing.
				break
		}
	}

	private async fetch(): Promise<void> {
		if (this.pollTimer) {
			this.deps.clock.clearTimeout(this.pollTimer)
			this.pollTimer = null
		}
		this.mode = 'fetching'
		for (;;) {
			this.wakeRequested = false
			const room = this.room()
			if (room <= 0) {
				this.mode = 'full'
				return
			}
			const names = this.claimNames()
			const limit = Math.min(room, this.settings.batchSize)
			let claimed: ClaimedJob[]
			try {
				claimed =
					names.length === 0
						? []
						: await this.deps.storage.claim({
								names,
								owner: this.owner,
								limit,
								leaseMs: this.claimLeaseMs,
								now: this.deps.clock.now(),
							})
				this.backoffMs = 0
			} catch (err) {
				this.deps.reportError(err, 'claim')
				if (this.mode !== 'fetching') return
				this.mode = 'backoff'
				this.backoffMs = Math.min(5000, this.backoffMs ? this.backoffMs * 2 : 100)
				this.pollTimer = this.deps.clock.setTimeout(() => {
					this.pollTimer = null
					if (this.mode === 'backoff') void this.fetch()
				}, this.backoffMs)
				return
			}
			if (this.mode !== 'fetching') {
				// Closed while claiming: give the jobs straight back.
				for (const job of claimed) {
					void this.completer.add({ kind: 'released', id: job.id, token: job.lease.token })
				}
				return
			}
			this.adapt(claimed.length, limit)
			const now = this.deps.clock.now()
			for (const job of claimed) this.accept(job, now)
			this.lastClaimFull = claimed.length === limit
			if (claimed.length === limit || this.wakeRequested) continue
			break
		}
		this.goIdle()
	}

	/** Nothing more to claim for now: wait for a notify or the poll. */
	private goIdle(): void {
		this.mode = 'idle'
		this.pollTimer = this.deps.clock.setTimeout(() => {
			this.pollTimer = null
			if (this.mode === 'idle') void this.fetch()
		}, this.settings.pollIntervalMs)
		this.checkIdle()
	}

	private claimNames(): string[] {
		const names: string[] = []
		for (const n of this.deps.jobs.keys()) if (!this.deps.isPaused(n)) names.push(n)
		return names
	}

	/**
	 * A write is about to be made (the completer's outcomes, or an enqueue of this process with
	 * `enqueueAndClaim`): claim with it when the loop waits for slots (full) or for work (idle) and
	 * slots are free. The loop counts as fetching until `gotClaim`, so one write claims at a time.
	 */
	takeClaim(): ClaimRequest | null {
		if (this.mode === 'fetching') {
			// The loop is claiming: have it look again for the slot this write frees.
			this.wakeRequested = true
			return null
		}
		if (this.mode !== 'full' && this.mode !== 'idle') return null
		// Prefetching: claims run on their own connection beside the writes, not inside them.
		if (this.prefetchTarget > 0) return null
		const room = this.room()
		if (room <= 0) return null
		const names = this.claimNames()
		if (names.length === 0) return null
		if (this.pollTimer) {
			this.deps.clock.clearTimeout(this.pollTimer)
			this.pollTimer = null
		}
		this.mode = 'fetching'
		this.wakeRequested = false
		return {
			names,
			owner: this.owner,
			limit: Math.min(room, this.settings.batchSize),
			leaseMs: this.claimLeaseMs,
		}
	}

	/** What the write of a `takeClaim` request claimed (null: the write failed and claimed nothing). */
	gotClaim(claimed: ClaimedJob[] | null, request: ClaimRequest): void {
		if (this.mode !== 'fetching') {
			// Closed meanwhile: give the jobs straight back.
			for (const job of claimed ?? []) {
				void this.completer.add({ kind: 'released', id: job.id, token: job.lease.token })
			}
			return
		}
		if (claimed === null) {
			// The loop claims on its own (and backs off if the storage is down).
			void this.fetch()
			return
		}
		this.adapt(claimed.length, request.limit)
		const now = this.deps.clock.now()
		for (const job of claimed) this.accept(job, now)
		this.lastClaimFull = claimed.length === request.limit
		if (claimed.length === request.limit || this.wakeRequested) {
			// No free slot left (the common case of a busy worker): full now, without a fetch call.
			if (this.room() > 0) void this.fetch()
			else {
				this.wakeRequested = false
				this.mode = 'full'
			}
		} else this.goIdle()
	}

	/**
	 * How many more jobs a claim may take: free slots, plus the prefetch buffer's free places. A
	 * buffer more than half full is not topped up, so claims carry many jobs rather than a few.
	 */
	private room(): number {
		const target = this.prefetchTarget
		if (target > 0 && this.buffered.length * 2 > target) return 0
		const room = this.settings.concurrency - this.running + target - this.buffered.length
		if (target === 0) return room
		// Jobs that ran but whose outcomes are not written yet count too: when writes fall behind,
		// claim no faster than they drain (memory stays bounded, the write keeps up).
		return Math.min(room, this.settings.concurrency + 2 * target - this.buffered.length - this.liveCount)
	}

	/**
	 * `prefetch: 'auto'`: a claim came back. Grow the target if it and the claim before it were full
	 * (a backlog) and the slots emptied while it was under way (jobs outrun claims). Drop it to 0
	 * when a claim found nothing and nothing is buffered (the backlog is gone): an idle worker then
	 * claims with writes again (`takeClaim`), so a job enqueued into it starts after one commit.
	 */
	private adapt(count: number, limit: number): void {
		const full = count === limit
		const backlog = full && this.previousClaimFull
		this.previousClaimFull = full
		if (this.settings.prefetch !== 'auto') return
		if (count === 0 && this.buffered.length === 0) {
			this.prefetchTarget = 0
			return
		}
		if (!backlog || this.buffered.length > 0) return
		const free = this.settings.concurrency - this.running
		if (free * 2 < this.settings.concurrency) return
		this.prefetchTarget = Math.min(
			AUTO_PREFETCH_MAX,
			Math.max(this.settings.concurrency, this.prefetchTarget * 4),
		)
	}

	/** A claimed job: start it if a slot is free and none is queued before it, else buffer it. */
	private accept(job: ClaimedJob, now: number): void {
		if (this.buffered.length === 0 && this.running < this.settings.concurrency) this.launch(job, now)
		else {
			this.buffered.push(job)
			this.bufferedAt.push(performance.now())
		}
	}

	/** Starts buffered jobs, in claim order, into free slots. */
	private pump(): void {
		if (this.mode === 'stopped') return
		let waited = 0
		let started = 0
		const now = this.deps.clock.now()
		while (this.buffered.length > 0 && this.running < this.settings.concurrency) {
			if (started === 0) waited = performance.now() - (this.bufferedAt[0] ?? 0)
			const job = this.buffered.shift()
			this.bufferedAt.shift()
			started++
			if (job) this.launch(job, now)
		}
		if (started > 0 && this.settings.prefetch === 'auto' && waited > AUTO_PREFETCH_WAIT_MS) {
			this.prefetchTarget = Math.floor(this.prefetchTarget / 2)
		}
	}

	private launch(job: ClaimedJob, now: number): void {
		const def = this.deps.jobs.get(job.name)
		if (!def) {
			// Cannot happen (claims name only known jobs); give it back rather than lose it.
			void this.completer.add({ kind: 'released', id: job.id, token: job.lease.token })
			return
		}
		const execution = new Execution(job, def, this.executionDeps, now)
		execution.holdsSlot = true
		this.running++
		this.link(execution)
		execution.run()
	}

	private link(e: Execution): void {
		e.inLive = true
		e.prevLive = null
		e.nextLive = this.liveHead
		if (this.liveHead) this.liveHead.prevLive = e
		this.liveHead = e
		this.liveCount++
	}

	private unlink(e: Execution): void {
		if (!e.inLive) return
		e.inLive = false
		if (e.prevLive) e.prevLive.nextLive = e.nextLive
		else this.liveHead = e.nextLive
		if (e.nextLive) e.nextLive.prevLive = e.prevLive
		e.prevLive = e.nextLive = null
		this.liveCount--
	}

	/** The newest live execution of a job id, if any. */
	private findLive(id: string): Execution | undefined {
		for (let e = this.liveHead; e; e = e.nextLive) if (e.job.id === id) return e
		return undefined
	}

	/** The live executions, copied (callers may end some while they go through them). */
	private liveList(): Execution[] {
		const list: Execution[] = []
		for (let e = this.liveHead; e; e = e.nextLive) list.push(e)
		return list
	}

	/**
	 * An execution handed its outcome to the completer: its slot is free now, not when the write
	 * commits. With `settleAndClaim` the completer's write refills it; otherwise the loop does.
	 */
	private vacate(execution: Execution): void {
		if (!execution.holdsSlot) return
		execution.holdsSlot = false
		this.running--
		if (this.buffered.length > 0) queueMicrotask(() => this.pump())
		if (!this.claimsWithSettle || this.prefetchTarget > 0) this.release()
	}

	/** An execution concluded (outcome written or refused, hooks run). */
	private ended(execution: Execution): void {
		this.unlink(execution)
		if (this.liveCount === 0 && this.liveWaiters.length > 0) for (const w of this.liveWaiters.splice(0)) w()
		if (execution.holdsSlot) {
			// Ended without an outcome to write (lease lost, cancelled): the slot frees here.
			execution.holdsSlot = false
			this.running--
			this.pump()
			this.release()
		} else if (this.mode === 'full' && this.prefetchTarget > 0) {
			// Claims wait for written outcomes when writes fall behind (see room).
			this.release()
		} else {
			this.checkIdle()
		}
	}

	/** A job suspended until `at`: fetch then (the claim wakes it), instead of waiting for the poll. */
	private wakeAt(at: number): void {
		if (this.mode === 'stopped') return
		if (this.wakeTimer && this.wakeTimer.at <= at) return
		if (this.wakeTimer) this.deps.clock.clearTimeout(this.wakeTimer.handle)
		const handle = this.deps.clock.setTimeout(
			() => {
				this.wakeTimer = null
				this.notify()
			},
			Math.max(0, at - this.deps.clock.now()),
		)
		handle.unref?.()
		this.wakeTimer = { at, handle }
	}

	/** A slot freed: refill once per turn of the event loop, so a batch's completions share one claim. */
	/**
	 * A write settled outcomes without claiming (retries due now, woken parents may be claimable). A
	 * claim under way on another connection may have taken its snapshot before that commit and miss
	 * them: have the loop look once more rather than go idle until the poll.
	 */
	private written(): void {
		if (this.mode === 'fetching') this.wakeRequested = true
		this.release()
	}

	private release(): void {
		if (this.refillScheduled) return
		this.refillScheduled = true
		setImmediate(() => {
			this.refillScheduled = false
			if (this.mode === 'full' || this.mode === 'idle') void this.fetch()
			else this.checkIdle()
		})
	}

	private checkIdle(): void {
		if (this.mode === 'fetching' || this.liveCount > 0 || this.buffered.length > 0) return
		if (this.completer.backlog > 0) return
		if (this.mode === 'full' || this.lastClaimFull || this.refillScheduled) return
		const waiters = this.idleWaiters
		this.idleWaiters = []
		for (const w of waiters) w()
	}

	/** Resolves when nothing due is left to run and nothing runs (tests, inline mode). */
	drain(): Promise<void> {
		if (this.mode === 'stopped') return Promise.resolve()
		return new Promise((resolve) => {
			this.idleWaiters.push(resolve)
			this.lastClaimFull = true
			this.notify()
			if (this.mode === 'backoff') return
			this.release()
		})
	}

	/** Stops an execution of this process (the job was cancelled here). */
	cancelLocal(id: string): boolean {
		const execution = this.findLive(id)
		if (!execution) return this.unbuffer(id)
		execution.abort('cancelled', abortErrors.cancelled())
		return true
	}

	/** Drops a buffered job whose lease is gone (cancelled, or lost); true if it was buffered. */
	private unbuffer(id: string): boolean {
		const at = this.buffered.findIndex((job) => job.id === id)
		if (at < 0) return false
		this.buffered.splice(at, 1)
		this.bufferedAt.splice(at, 1)
		this.release()
		return true
	}

	/** Registers a job claimed outside the fetch loop so its lease is heartbeated. */
	adopt(job: ClaimedJob): () => void {
		this.adopted.set(job.id, job)
		return () => this.adopted.delete(job.id)
	}

	/** The shortest lease of any job: claims use it, and heartbeats come every third of it. */
	private shortestLease(): number {
		let ms = this.settings.leaseMs
		for (const def of this.deps.jobs.values())
			if (def.leaseMs !== undefined && def.leaseMs < ms) ms = def.leaseMs
		return ms
	}

	/**
	 * Heartbeats come on a fixed beat of the clock, whatever a storage call's latency: the next one
	 * is scheduled when a beat fires, not when its write returns. Heartbeats and reaps of this
	 * process then run one after another in the order their timers fired (`serial`), so a reap never
	 * overtakes a heartbeat that fired before it. On the test clock this makes lease timing
	 * deterministic over a network storage too; on the system clock it keeps beats from drifting.
	 */
	private scheduleHeartbeat(): void {
		const every = Math.max(10, Math.floor(this.shortestLease() / 3))
		this.heartbeatTimer = this.deps.clock.setTimeout(() => {
			if (this.mode === 'stopped') return
			this.scheduleHeartbeat()
			// A beat still waiting its turn covers this one too.
			if (this.heartbeatQueued) return
			this.heartbeatQueued = true
			void this.serial(() => {
				this.heartbeatQueued = false
				return this.heartbeatAll()
			})
		}, every)
	}

	private housekeeping: Promise<void> = Promise.resolve()
	private heartbeatQueued = false

	/** Runs `fn` after the heartbeats and reaps queued before it. */
	private serial<T>(fn: () => Promise<T>): Promise<T> {
		const run = this.housekeeping.then(fn, fn)
		this.housekeeping = run.then(
			() => {},
			() => {},
		)
		return run
	}

	private leaseOf(def: RuntimeJob | undefined): number {
		return def?.leaseMs ?? this.settings.leaseMs
	}

	private async heartbeatAll(): Promise<void> {
		const byLease = new Map<number, { id: string; token: string }[]>()
		const add = (leaseMs: number, id: string, token: string) => {
			let list = byLease.get(leaseMs)
			if (!list) {
				list = []
				byLease.set(leaseMs, list)
			}
			list.push({ id, token })
		}
		// Newest first, one lease per job: an earlier execution of the same job (it suspended and was
		// woken and claimed again before it ended) holds a stale token, and `lost` names only ids.
		const seen = new Set<string>()
		for (let e = this.liveHead; e; e = e.nextLive) {
			if (seen.has(e.job.id)) continue
			seen.add(e.job.id)
			add(this.leaseOf(e.def), e.job.id, e.token)
		}
		for (const job of this.adopted.values())
			add(this.leaseOf(this.deps.jobs.get(job.name)), job.id, job.lease.token)
		for (const job of this.buffered) add(this.leaseOf(this.deps.jobs.get(job.name)), job.id, job.lease.token)
		for (const [leaseMs, leases] of byLease) {
			try {
				const lost = await this.deps.storage.heartbeat({ leases, leaseMs, now: this.deps.clock.now() })
				for (const id of lost) await this.onLost(id)
			} catch (err) {
				this.deps.reportError(err, 'heartbeat')
			}
		}
	}

	private async heartbeatOne(execution: Execution): Promise<void> {
		const lost = await this.deps.storage.heartbeat({
			leases: [{ id: execution.job.id, token: execution.token }],
			leaseMs: this.leaseOf(execution.def),
			now: this.deps.clock.now(),
		})
		if (lost.length > 0) {
			await this.onLost(execution.job.id)
			throw new LeaseLostError(execution.job.id)
		}
	}

	/** A lease is gone: cancelled by someone, or expired and taken over. Stop the handler. */
	private async onLost(id: string): Promise<void> {
		const execution = this.findLive(id)
		if (!execution) {
			this.unbuffer(id)
			return
		}
		let cancelled = false
		try {
			cancelled = (await this.deps.storage.getJob({ id }))?.status === 'cancelled'
		} catch {
			// Unknown: treat it as lost.
		}
		if (cancelled) execution.abort('cancelled', abortErrors.cancelled())
		else execution.abort('lease-lost', new LeaseLostError(id))
	}

	private scheduleMaintenance(delay: number): void {
		this.maintenanceTimer = this.deps.clock.setTimeout(() => {
			void this.maintain().finally(() => {
				if (this.mode !== 'stopped') this.scheduleMaintenance(this.settings.maintenanceIntervalMs)
			})
		}, delay)
	}

	/** Reaps expired leases, wakes waiting jobs whose time came, and prunes now and then. */
	async maintain(): Promise<void> {
		const now = this.deps.clock.now()
		try {
			// `now` is when maintenance was asked for; heartbeats that fired before it land first.
			const r = await this.serial(() => this.deps.storage.reap({ now, limit: 1000 }))
			if (r.requeued.length + r.woken.length > 0) this.notify()
			if (r.requeued.length + r.dead.length > 0) {
				this.deps.logger.warn(
					{ requeued: r.requeued.length, dead: r.dead.length },
					'Reaped jobs whose worker stopped heartbeating (crashed or stalled).',
				)
			}
		} catch (err) {
			this.deps.reportError(err, 'reap')
		}
		if (now - this.lastPrune >= this.settings.pruneIntervalMs) {
			this.lastPrune = now
			await this.prune(now)
		}
	}

	private async prune(now: number): Promise<void> {
		const names = new Set(this.deps.jobs.keys())
		try {
			for (const name of names) {
				const r = this.settings.retentionFor(name)
				for (const status of ['completed', 'cancelled', 'dead'] as const) {
					const before = now - r[status]
					while (
						(await this.deps.storage.prune({ statuses: [status], before, limit: 1000, name })) === 1000
					) {}
				}
			}
		} catch (err) {
			this.deps.reportError(err, 'prune')
		}
	}

	/**
	 * Stops claiming, waits up to `timeoutMs` for running jobs, then aborts the rest and gives
	 * their jobs back without counting an attempt. Safe to call twice.
	 */
	async close(timeoutMs: number): Promise<void> {
		if (this.mode === 'stopped') {
			await this.completer.flush()
			return
		}
		this.mode = 'stopped'
		this.unsubscribe?.()
		this.unsubscribe = null
		for (const t of [this.pollTimer, this.heartbeatTimer, this.maintenanceTimer, this.wakeTimer?.handle]) {
			if (t) this.deps.clock.clearTimeout(t)
		}
		this.wakeTimer = null
		this.pollTimer = this.heartbeatTimer = this.maintenanceTimer = null
		// Jobs claimed ahead never started: give them back without counting an attempt.
		this.bufferedAt = []
		for (const job of this.buffered.splice(0)) {
			void this.completer.add({ kind: 'released', id: job.id, token: job.lease.token })
		}
		const bounded = (p: Promise<unknown>) => {
			let timer: ReturnType<typeof setTimeout> | undefined
			return Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]).finally(() =>
				clearTimeout(timer),
			)
		}
		if (this.liveCount > 0) {
			const all = new Promise<void>((resolve) => this.liveWaiters.push(resolve))
			await bounded(all)
			for (const e of this.liveList()) e.abort('closing', abortErrors.closing())
			// Giving jobs back needs the storage; if it is gone, their leases expire and the reaper
			// gives them back instead. Either way close does not hang.
			await bounded(all)
		}
		await bounded(this.completer.flush())
		this.completer.stop()
		for (const w of this.idleWaiters.splice(0)) w()
	}
}
