/**
 * The memory storage: the reference implementation of the contract. Everything lives in this
 * process and is gone when it exits. For tests, scripts, and as the model the other storages are
 * checked against by test/conformance.
 */
import {
	admitThrottle,
	admitWindow,
	type DebounceState,
	decideDebounce,
	type ThrottleState,
	type WindowState,
} from '../flow/limits.js'
import { createLeaseToken } from '../id.js'
import type { JsonText } from '../json.js'
import type { Archive } from './archive.js'
import {
	type AttemptError,
	type CancelResult,
	type ClaimedJob,
	type ClaimOrEnqueueResult,
	type ClaimRequest,
	type EnqueueResult,
	emptyCounts,
	isTerminal,
	type JobPage,
	type JobRow,
	type JobStatus,
	matchesPattern,
	type NewJob,
	type Outcome,
	type PublishedEvent,
	type QueueStats,
	type SettleAndClaimResult,
	type SettleResult,
	type StatusCounts,
	type StepRow,
	type Storage,
	type WaiterRow,
} from './contract.js'
import { MinHeap } from './heap.js'
import { dequeued, newRow, type Queued, queueEntry, type Row } from './row.js'

/** Options of the memory storage. */
export interface MemoryStorageOptions {
	/** How many `ctx.log` lines to keep per job (oldest dropped first). Default 100. */
	readonly maxLogLines?: number
}

export { Row } from './row.js'

type HeapEntry = Queued

const lessEntry = (a: HeapEntry, b: HeapEntry): boolean =>
	a.priority !== b.priority
		? a.priority < b.priority
		: a.queuedAt !== b.queuedAt
			? a.queuedAt < b.queuedAt
			: a.seq < b.seq

const lessRunAt = (a: HeapEntry, b: HeapEntry): boolean =>
	a.queuedAt !== b.queuedAt ? a.queuedAt < b.queuedAt : a.seq < b.seq

/** Pending jobs of one name: those due, in claim order, and those not due yet, by time. */
interface NameQueue {
	ready: MinHeap<HeapEntry>
	delayed: MinHeap<HeapEntry>
}

interface KeyHolders {
	pending: Set<Row>
	active: Set<Row>
}

/**
 * Told of every change the memory storage makes, right after it is made, in order. Replaying the
 * same changes through the `apply*` methods rebuilds the same state: the file log is this state
 * plus a log of these calls. Internal, not part of the public API.
 */
export interface MemoryJournal {
	/** A job was inserted; `row.status` is `active` when it was inserted claimed (claimOrEnqueue). */
	created(row: Row): void
	/** These pending jobs were claimed under one lease (the rows hold it). */
	claimed(rows: readonly Row[], now: number): void
	/** An outcome was applied to an active job (for `completed` with `remove`, the row is gone). */
	settled(row: Row, outcome: Outcome, now: number): void
	/** The reaper took an expired lease back (the row is now pending or dead). */
	reaped(row: Row, now: number): void
	/** A flow state entry was set (null: deleted). */
	meta(key: string, value: unknown): void
	/** A pending job took a debounced trigger's input and runAt. */
	debounced(row: Row, now: number): void
	/** A waiting job was woken. */
	woken(row: Row, now: number): void
	cancelled(row: Row, now: number): void
	replayed(row: Row, now: number): void
	/** A finished job was pruned. */
	removed(row: Row): void
	logged(row: Row, lines: readonly string[]): void
	stepSaved(row: Row, step: StepRow): void
	/** A waiter was registered. */
	waiterAdded(waiter: WaiterRow): void
	/** A waiter's oldest events (or the waiter) were dropped. */
	waiterTrimmed(id: string, drop: number | 'all'): void
	/** An event was published to the waiters of its topic (their jobs woken as replay redoes). */
	published(event: PublishedEvent, now: number): void
}

/** Creates a memory storage. */
export function memory(options: MemoryStorageOptions = {}): Storage {
	return new MemoryStorage(options)
}

/**
 * The memory storage. Internal: exported so the file log can keep its state in one and journal its
 * changes; use `memory()` instead.
 */
export class MemoryStorage implements Storage {
	readonly description: string = 'memory'
	readonly capabilities = { push: false, multiProcess: false } as const
	/** Told of every change, when set. */
	journal: MemoryJournal | null = null

	private readonly maxLogLines: number
	/** Every job, in insertion order. */
	readonly rows = new Map<string, Row>()
	private readonly queues = new Map<string, NameQueue>()
	private readonly idempotency = new Map<string, Row>()
	private readonly dedupe = new Map<string, KeyHolders>()
	private readonly active = new Set<Row>()
	private readonly waiting = new Set<Row>()
	private readonly counts = new Map<string, StatusCounts>()
	/** Active jobs per concurrency key (limits without a window). */
	private readonly running = new Map<string, number>()
	/**
	 * Per-key flow state, as the decisions in flow/limits return it: `t:` throttles, `d:`
	 * debounces, `c:` concurrency windows (`{ state, until }`), `tick:` schedule ticks, `paused:`
	 * paused names. Every change goes through `setMeta`, which journals it.
	 */
	readonly meta = new Map<string, unknown>()
	/** The last insertion sequence number given. */
	seq = 0
	/**
	 * The last creation time given, as one number object that the rows made at that time share:
	 * `params.now` read from a caller's object is a new 16-byte box per read. Null at first, so
	 * V8 keeps the field tagged (a number-only field would be boxed anew on every read too).
	 */
	private at: number = null as unknown as number
	/**
	 * Completed jobs kept compactly (the file log's replay puts most finished jobs there): read as
	 * rows made on demand, never changed but for late log lines and pruning. Their seqs interleave
	 * with those of `rows`.
	 */
	archive: Archive | null = null
	private readonly waiters = new Map<string, WaiterRow & { events: JsonText[] }>()
	private readonly waitersByTopic = new Map<string, Set<string>>()

	constructor(options: MemoryStorageOptions) {
		this.maxLogLines = options.maxLogLines ?? 100
	}

	async open(): Promise<void> {}
	async close(): Promise<void> {}

	async enqueue(params: { jobs: readonly NewJob[]; now: number }): Promise<EnqueueResult[]> {
		return params.jobs.map((job) => this.insert(job, params.now))
	}

	/** Takes the archive's jobs in (they count as completed). */
	attachArchive(archive: Archive): void {
		this.archive = archive
		for (let i = 0; i < archive.slots; i++) if (!archive.removed(i)) this.count(archive.nameAt(i)).completed++
	}

	/** The job with this id, live or archived (as a row made for the caller, changing nothing). */
	private find(id: string): Row | undefined {
		const row = this.rows.get(id)
		if (row !== undefined || this.archive === null) return row
		const i = this.archive.slotOf(id)
		return i === -1 ? undefined : this.archive.row(i)
	}

	/** The job kept under this job's id or idempotency key, if any. */
	private kept(job: NewJob): Row | undefined {
		const same = this.find(job.id)
		if (same) return same
		return job.idempotencyKey === null
			? undefined
			: this.idempotency.get(`${job.name}\0${job.idempotencyKey}`)
	}

	private insert(job: NewJob, now: number): EnqueueResult {
		const existing = this.kept(job)
		if (existing) return { status: 'existing', id: existing.id }
		if (job.dedupeKey !== null) {
			const holders = this.dedupe.get(`${job.name}\0${job.dedupeKey}`)
			if (holders) {
				const pending = first(holders.pending)
				if (pending) return { status: 'deduped', id: pending.id }
				const active = first(holders.active)
				if (active && job.dedupeScope === 'pending+active') return { status: 'deduped', id: active.id }
			}
		}
		if (job.tick) {
			const last = this.meta.get(`tick:${job.tick.key}`) as number | undefined
			if (last !== undefined && last >= job.tick.at) return { status: 'existing', id: job.id }
			this.setMeta(`tick:${job.tick.key}`, job.tick.at)
		}
		let runAt = job.runAt
		let trailing = false
		if (job.debounce) {
			const key = `d:${job.debounce.key}`
			const state = (this.meta.get(key) as DebounceState | undefined) ?? null
			const pending = state?.jobId ? this.rows.get(state.jobId) : undefined
			const d = decideDebounce(state, pending?.status === 'pending', job.debounce, now)
			if (d.kind === 'replace') {
				const row = pending!
				this.applyDebounce(row, job.input, d.runAt, now)
				this.journal?.debounced(row, now)
				this.setMeta(key, d.state)
				return { status: 'debounced', id: row.id }
			}
			runAt = d.runAt
			trailing = d.trailing
			this.setMeta(key, trailing ? { ...d.state, jobId: job.id } : d.state)
		}
		if (job.throttle) {
			const key = `t:${job.throttle.key}`
			const state = (this.meta.get(key) as ThrottleState | undefined) ?? null
			const t = admitThrottle(state, job.throttle, now, runAt)
			if (!t.ok) return { status: 'throttled', id: (this.meta.get(`${key}:last`) as string) ?? null }
			this.setMeta(key, t.state)
			this.setMeta(`${key}:last`, job.id)
			runAt = t.runAt
		}
		const row = this.create(runAt === job.runAt ? job : { ...job, runAt }, now, null)
		this.journal?.created(row)
		return { status: 'created', id: job.id }
	}

	/** Inserts a job (claimed under `lease` when given). */
	create(job: NewJob, now: number, lease: { owner: string; token: string; expiresAt: number } | null): Row {
		if (this.at !== now) this.at = now
		const row = newRow(
			job.id,
			job.name,
			job.input,
			job.priority,
			job.runAt,
			job.maxAttempts,
			this.at,
			++this.seq,
		)
		row.setOptions(
			job.dedupeKey,
			job.dedupeKey === null ? null : job.dedupeScope,
			job.idempotencyKey,
			job.parentId,
			job.backoff,
			job.concurrency ?? null,
		)
		this.rows.set(row.id, row)
		if (row.idempotencyKey !== null) this.idempotency.set(`${row.name}\0${row.idempotencyKey}`, row)
		this.count(row.name).pending++
		if (lease) {
			this.transition(row, 'active', now)
			row.attempt = 1
			row.leaseOwner = lease.owner
			row.leaseToken = lease.token
			row.leaseExpiresAt = lease.expiresAt
			row.startedAt = now
		} else {
			this.enterPending(row, now)
		}
		return row
	}

	private count(name: string): StatusCounts {
		let c = this.counts.get(name)
		if (!c) {
			c = emptyCounts()
			this.counts.set(name, c)
		}
		return c
	}

	private holders(row: Row): KeyHolders | null {
		if (row.dedupeKey === null) return null
		const key = `${row.name}\0${row.dedupeKey}`
		let h = this.dedupe.get(key)
		if (!h) {
			h = { pending: new Set(), active: new Set() }
			this.dedupe.set(key, h)
		}
		return h
	}

	/** The one place a row changes state: keeps counts and every index right. */
	private transition(row: Row, to: JobStatus, now: number): void {
		const from = row.status
		const c = this.count(row.name)
		c[from]--
		c[to]++
		row.status = to
		row.updatedAt = now
		const h = this.holders(row)
		const limited = row.concurrency !== null && row.concurrency.windowMs === null
		if (limited && from === 'active') this.running.set(row.concurrency!.key, this.runningOf(row) - 1)
		if (limited && to === 'active') this.running.set(row.concurrency!.key, this.runningOf(row) + 1)
		if (from === 'active') {
			this.active.delete(row)
			row.leaseOwner = null
			row.leaseToken = null
			row.leaseExpiresAt = 0
			h?.active.delete(row)
		} else if (from === 'waiting') {
			this.waiting.delete(row)
		} else if (from === 'pending') {
			h?.pending.delete(row)
		}
		if (to === 'active') {
			this.active.add(row)
			h?.active.add(row)
		} else if (to === 'waiting') {
			this.waiting.add(row)
		} else if (to === 'pending') {
			this.enterPending(row, now)
		}
		if (h && h.pending.size === 0 && h.active.size === 0) this.dedupe.delete(`${row.name}\0${row.dedupeKey}`)
		if (isTerminal(to)) {
			row.finishedAt = now
			if (row.parentId !== null) this.wakeOne(row.parentId, now)
		}
	}

	private queueOf(name: string): NameQueue {
		let q = this.queues.get(name)
		if (!q) {
			q = { ready: new MinHeap(lessEntry), delayed: new MinHeap(lessRunAt) }
			this.queues.set(name, q)
		}
		return q
	}

	private enterPending(row: Row, now: number): void {
		row.pendingEpoch++
		this.holders(row)?.pending.add(row)
		if (this.deferQueues) return
		const q = this.queueOf(row.name)
		const entry = queueEntry(row)
		if (row.runAt <= now) q.ready.push(entry)
		else q.delayed.push(entry)
	}

	/** Moves entries that are due by `now` from delayed to ready. */
	private promote(q: NameQueue, now: number): void {
		for (let top = q.delayed.peek(); top && top.queuedAt <= now; top = q.delayed.peek()) {
			q.delayed.pop()
			if (this.isLive(top)) q.ready.push(top)
			else dequeued(top)
		}
	}

	/** Whether a queue entry still stands for its row: pending since the entry was made, not removed. */
	private isLive(e: HeapEntry): boolean {
		return e.row.status === 'pending' && e.queuedEpoch === e.row.pendingEpoch
	}

	private runningOf(row: Row): number {
		return this.running.get(row.concurrency!.key) ?? 0
	}

	/** Whether the row's concurrency key lets one more start now; takes the start if so. */
	private admit(row: Row, now: number): boolean {
		const c = row.concurrency
		if (c === null) return true
		if (c.windowMs === null) return this.runningOf(row) < c.limit
		const key = `c:${c.key}`
		const w = this.meta.get(key) as { state: WindowState; until: number | null } | undefined
		if ((w?.until ?? 0) > now) return false
		const r = admitWindow(w?.state ?? null, c, now)
		if (!r.ok) return false
		this.setMeta(key, { state: r.state, until: r.until })
		return true
	}

	private blockedBySingleFlight(row: Row): boolean {
		if (row.dedupeKey === null) return false
		const h = this.dedupe.get(`${row.name}\0${row.dedupeKey}`)
		return h !== undefined && h.active.size > 0
	}

	async claim(params: {
		names: readonly string[]
		owner: string
		limit: number
		leaseMs: number
		now: number
	}): Promise<ClaimedJob[]> {
		return this.claimNow(params)
	}

	private claimNow(params: {
		names: readonly string[]
		owner: string
		limit: number
		leaseMs: number
		now: number
	}): ClaimedJob[] {
		const { now, limit } = params
		const token = createLeaseToken()
		const expiresAt = now + params.leaseMs
		const claimed: ClaimedJob[] = []
		const rows: Row[] = []
		const skipped: HeapEntry[] = []
		const heaps: MinHeap<HeapEntry>[] = []
		if (this.waiting.size > 0) {
			// Sleepers of these names whose time came are claimable now, without waiting for reap.
			const names = new Set(params.names)
			for (const row of [...this.waiting]) {
				if (row.runAt <= now && names.has(row.name) && this.wakeOne(row.id, now))
					this.journal?.woken(row, now)
			}
		}
		for (const name of params.names) {
			const q = this.queues.get(name)
			if (!q || this.meta.has(`paused:${name}`)) continue
			this.promote(q, now)
			if (q.ready.size > 0) heaps.push(q.ready)
		}
		while (claimed.length < limit) {
			// The best due head across the names this worker handles.
			let best: MinHeap<HeapEntry> | null = null
			let bestEntry: HeapEntry | undefined
			for (const heap of heaps) {
				let top = heap.peek()
				while (top && !this.isLive(top)) {
					heap.pop()
					dequeued(top)
					top = heap.peek()
				}
				if (top && (!bestEntry || lessEntry(top, bestEntry))) {
					best = heap
					bestEntry = top
				}
			}
			if (!best || !bestEntry) break
			best.pop()
			const row = bestEntry.row
			if (this.blockedBySingleFlight(row) || !this.admit(row, now)) {
				skipped.push(bestEntry)
				continue
			}
			dequeued(bestEntry)
			this.applyClaim(row, params.owner, token, expiresAt, now)
			claimed.push(toClaimed(row))
			rows.push(row)
		}
		for (const e of skipped) this.queues.get(e.row.name)?.ready.push(e)
		if (rows.length > 0) this.journal?.claimed(rows, now)
		return claimed
	}

	/** Moves a pending job to active under a lease. */
	applyClaim(row: Row, owner: string, token: string, expiresAt: number, now: number): void {
		this.transition(row, 'active', now)
		row.attempt++
		row.leaseOwner = owner
		row.leaseToken = token
		row.leaseExpiresAt = expiresAt
		row.startedAt = now
	}

	async claimOrEnqueue(params: {
		job: NewJob & { dedupeKey: string }
		owner: string
		leaseMs: number
		now: number
	}): Promise<ClaimOrEnqueueResult> {
		const { job, now } = params
		const lease = { owner: params.owner, token: createLeaseToken(), expiresAt: now + params.leaseMs }
		const holders = this.dedupe.get(`${job.name}\0${job.dedupeKey}`)
		const pending = holders ? first(holders.pending) : undefined
		const active = holders ? first(holders.active) : undefined
		const kept = pending || active ? undefined : this.kept(job)
		if (kept) return { status: 'deduped', id: kept.id }
		if (active) {
			if (pending) return { status: 'deduped', id: pending.id }
			if (job.dedupeScope === 'pending+active') return { status: 'deduped', id: active.id }
			const behind = this.kept(job)
			if (behind) return { status: 'deduped', id: behind.id }
			const row = this.create(job, now, null)
			this.journal?.created(row)
			return { status: 'enqueued', id: job.id }
		}
		if (pending) {
			this.applyClaim(pending, lease.owner, lease.token, lease.expiresAt, now)
			this.journal?.claimed([pending], now)
			return { status: 'claimed', job: toClaimed(pending) }
		}
		const row = this.create(job, now, lease)
		this.journal?.created(row)
		return { status: 'claimed', job: toClaimed(row) }
	}

	private held(id: string, token: string): Row | undefined {
		const row = this.rows.get(id)
		return row && row.status === 'active' && row.leaseToken === token ? row : undefined
	}

	async heartbeat(params: {
		leases: readonly { id: string; token: string }[]
		leaseMs: number
		now: number
	}): Promise<string[]> {
		const lost: string[] = []
		for (const { id, token } of params.leases) {
			const row = this.held(id, token)
			if (row) {
				row.leaseExpiresAt = params.now + params.leaseMs
				row.updatedAt = params.now
			} else {
				lost.push(id)
			}
		}
		return lost
	}

	async settle(params: {
		outcomes: readonly Outcome[]
		logs?: ReadonlyMap<string, readonly string[]>
		now: number
	}): Promise<SettleResult[]> {
		return this.settleNow(params)
	}

	async settleAndClaim(params: {
		outcomes: readonly Outcome[]
		logs?: ReadonlyMap<string, readonly string[]>
		now: number
		claim: ClaimRequest
	}): Promise<SettleAndClaimResult> {
		const settled = this.settleNow(params)
		const claimed = params.claim.limit > 0 ? this.claimNow({ ...params.claim, now: params.now }) : []
		return { settled, claimed }
	}

	private settleNow(params: {
		outcomes: readonly Outcome[]
		logs?: ReadonlyMap<string, readonly string[]>
		now: number
	}): SettleResult[] {
		const { now } = params
		if (params.logs) {
			for (const [id, lines] of params.logs) {
				const row = this.rows.get(id)
				if (row) {
					this.applyLogs(row, lines)
					this.journal?.logged(row, lines)
				} else if (this.archive !== null) {
					const i = this.archive.slotOf(id)
					if (i !== -1) {
						this.archive.addLogs(i, lines, this.maxLogLines)
						this.journal?.logged(this.archive.row(i), lines)
					}
				}
			}
		}
		return params.outcomes.map((o) => {
			const row = this.held(o.id, o.token)
			if (!row) return { id: o.id, ok: false }
			const arrived =
				o.kind === 'suspended' &&
				((o.children ?? []).some((id) => {
					const child = this.rows.get(id)
					return !child || isTerminal(child.status)
				}) ||
					(o.waiters ?? []).some((id) => (this.waiters.get(id)?.events.length ?? 0) > 0))
			this.applyOutcome(row, o, now)
			this.journal?.settled(row, o, now)
			if (o.kind === 'completed') {
				for (const job of o.followUps ?? []) this.insert(job, now)
				if (o.event) this.publishNow(o.event, now)
			}
			// What it waits for came while it ran: pending again at once.
			if (arrived && this.wakeOne(row.id, now)) this.journal?.woken(row, now)
			return { id: o.id, ok: true }
		})
	}

	/** Appends `ctx.log` lines to a job, keeping the last `maxLogLines`. */
	applyLogs(row: Row, lines: readonly string[]): void {
		row.addLogs(lines, this.maxLogLines)
	}

	/** Applies an outcome to an active job (the token was checked by the caller). */
	applyOutcome(row: Row, o: Outcome, now: number): void {
		switch (o.kind) {
			case 'completed':
				row.output = o.output
				this.transition(row, 'completed', now)
				if (o.remove) this.remove(row)
				break
			case 'retry':
				row.addError(o.error)
				row.runAt = o.runAt
				this.transition(row, 'pending', now)
				break
			case 'dead':
				row.addError(o.error)
				this.transition(row, 'dead', now)
				break
			case 'suspended':
				row.attempt--
				row.runAt = o.wakeAt ?? Number.MAX_SAFE_INTEGER
				this.transition(row, 'waiting', now)
				break
			case 'released':
				row.attempt--
				row.runAt = now
				this.transition(row, 'pending', now)
				break
		}
	}

	async reap(params: { now: number; limit: number }): Promise<{
		requeued: string[]
		dead: string[]
		woken: string[]
	}> {
		const { now, limit } = params
		const requeued: string[] = []
		const dead: string[] = []
		const woken: string[] = []
		for (const row of [...this.active]) {
			if (requeued.length + dead.length >= limit) break
			if (row.leaseExpiresAt > now) continue
			this.applyReap(row, now)
			this.journal?.reaped(row, now)
			if (row.status === 'dead') dead.push(row.id)
			else requeued.push(row.id)
		}
		for (const row of [...this.waiting]) {
			if (woken.length >= limit) break
			if (row.runAt > now) continue
			this.wakeOne(row.id, now)
			this.journal?.woken(row, now)
			woken.push(row.id)
		}
		return { requeued, dead, woken }
	}

	/** Takes back an active job whose lease expired: pending again, or dead with no attempt left. */
	applyReap(row: Row, now: number): void {
		const error: AttemptError = {
			attempt: row.attempt,
			name: 'LeaseLostError',
			message: `The worker '${row.leaseOwner}' stopped heartbeating (crashed or stalled) and its lease expired.`,
			code: 'SPOOL_LEASE_LOST',
			at: now,
		}
		row.addError(error)
		if (row.attempt >= row.maxAttempts) {
			this.transition(row, 'dead', now)
		} else {
			row.runAt = now
			this.transition(row, 'pending', now)
		}
	}

	/** Moves a waiting job to pending now. */
	wakeOne(id: string, now: number): boolean {
		const row = this.rows.get(id)
		if (row?.status !== 'waiting') return false
		row.runAt = now
		this.transition(row, 'pending', now)
		return true
	}

	async wake(params: { ids: readonly string[]; now: number }): Promise<string[]> {
		return params.ids.filter((id) => {
			if (!this.wakeOne(id, params.now)) return false
			this.journal?.woken(this.rows.get(id)!, params.now)
			return true
		})
	}

	async cancel(params: { id: string; now: number }): Promise<CancelResult> {
		const row = this.find(params.id)
		if (!row) return { status: 'not-found' }
		const previous = row.status
		if (previous === 'completed' || previous === 'dead' || previous === 'cancelled') {
			return { status: 'finished', current: previous }
		}
		this.applyCancel(row, params.now)
		this.journal?.cancelled(row, params.now)
		return { status: 'cancelled', previous }
	}

	async replay(params: ({ ids: readonly string[] } | { name: string }) & { now: number }): Promise<string[]> {
		const targets =
			'ids' in params
				? params.ids.map((id) => this.rows.get(id)).filter((r): r is Row => r !== undefined)
				: [...this.rows.values()].filter((r) => r.name === params.name)
		const replayed: string[] = []
		for (const row of targets) {
			if (row.status !== 'dead') continue
			this.applyReplay(row, params.now)
			this.journal?.replayed(row, params.now)
			replayed.push(row.id)
		}
		return replayed
	}

	/** Moves a dead job back to pending with its attempts reset. */
	applyReplay(row: Row, now: number): void {
		row.attempt = 0
		row.runAt = now
		row.finishedAt = null
		this.transition(row, 'pending', now)
	}

	/** Cancels a job that is not terminal. */
	applyCancel(row: Row, now: number): void {
		this.transition(row, 'cancelled', now)
	}

	/** Deletes a job. */
	remove(row: Row): void {
		this.rows.delete(row.id)
		// Any queue entry of the row is stale from now on (see isLive).
		row.pendingEpoch++
		if (this.waiters.size > 0) for (const [id, w] of this.waiters) if (w.jobId === row.id) this.dropWaiter(id)
		this.count(row.name)[row.status]--
		if (row.idempotencyKey !== null) {
			const key = `${row.name}\0${row.idempotencyKey}`
			if (this.idempotency.get(key) === row) this.idempotency.delete(key)
		}
	}

	async prune(params: {
		statuses: readonly ('completed' | 'dead' | 'cancelled')[]
		before: number
		limit: number
		name?: string
	}): Promise<number> {
		let n = 0
		const a = this.archive
		const archived = a !== null && a.size > 0 && params.statuses.includes('completed')
		let i = 0
		for (const row of this.rows.values()) {
			if (n >= params.limit) break
			// Archived jobs before this one first: the oldest go first, as if they were rows.
			if (archived) {
				for (; i < a.slots && a.seqAt(i) < row.seq && n < params.limit; i++)
					if (this.pruneArchived(a, i, params)) n++
				if (n >= params.limit) break
			}
			if (params.name !== undefined && row.name !== params.name) continue
			if (!(params.statuses as readonly JobStatus[]).includes(row.status)) continue
			if (row.finishedAt === null || row.finishedAt >= params.before) continue
			this.remove(row)
			this.journal?.removed(row)
			n++
		}
		if (archived) for (; i < a.slots && n < params.limit; i++) if (this.pruneArchived(a, i, params)) n++
		return n
	}

	/** Prunes the archived job in slot `i` if the prune's filters take it. */
	private pruneArchived(a: Archive, i: number, params: { before: number; name?: string }): boolean {
		if (a.removed(i) || a.finishedAt(i) >= params.before) return false
		if (params.name !== undefined && a.nameAt(i) !== params.name) return false
		const row = a.row(i)
		a.remove(i)
		this.count(row.name).completed--
		if (this.waiters.size > 0) for (const [id, w] of this.waiters) if (w.jobId === row.id) this.dropWaiter(id)
		this.journal?.removed(row)
		return true
	}

	/** Sets (or, with null, deletes) one entry of the flow state, and journals it. */
	setMeta(key: string, value: unknown): void {
		this.applyMeta(key, value)
		this.journal?.meta(key, value)
	}

	/** Sets or deletes a flow state entry without journaling (replay). */
	applyMeta(key: string, value: unknown): void {
		if (value === null) this.meta.delete(key)
		else this.meta.set(key, value)
	}

	/** A debounced trigger: the pending job takes its input and a new runAt. */
	applyDebounce(row: Row, input: JsonText, runAt: number, now: number): void {
		row.input = input
		row.runAt = runAt
		row.updatedAt = now
		this.enterPending(row, now)
	}

	async setPaused(params: { name: string; paused: boolean; now: number }): Promise<void> {
		const key = `paused:${params.name}`
		if (params.paused !== this.meta.has(key)) this.setMeta(key, params.paused ? params.now : null)
	}

	async listPaused(): Promise<string[]> {
		return [...this.meta.keys()]
			.filter((k) => k.startsWith('paused:'))
			.map((k) => k.slice(7))
			.sort()
	}

	async lastTick(params: { key: string }): Promise<number | null> {
		return (this.meta.get(`tick:${params.key}`) as number | undefined) ?? null
	}

	async getJob(params: { id: string }): Promise<JobRow | null> {
		const row = this.find(params.id)
		return row ? toJobRow(row) : null
	}

	async listJobs(params: {
		name?: string
		status?: JobStatus
		parentId?: string
		limit: number
		cursor?: string | null
	}): Promise<JobPage> {
		const below = params.cursor ? Number(params.cursor) : Number.POSITIVE_INFINITY
		const all = [...this.rows.values()]
		const jobs: JobRow[] = []
		let last: Row | null = null
		const a = this.archive
		// Archived jobs (completed, without parent) are merged in by seq, newest first.
		const archived =
			a !== null &&
			a.size > 0 &&
			(params.status === undefined || params.status === 'completed') &&
			params.parentId === undefined
		let k = archived ? a.slots - 1 : -1
		for (let i = all.length - 1; i >= 0 || k >= 0; ) {
			let row: Row
			if (k >= 0 && (i < 0 || a!.seqAt(k) > all[i]!.seq)) {
				const slot = k--
				if (a!.removed(slot) || a!.seqAt(slot) >= below) continue
				if (params.name !== undefined && a!.nameAt(slot) !== params.name) continue
				row = a!.row(slot)
			} else {
				row = all[i--]!
			}
			if (row.seq >= below) continue
			if (params.name !== undefined && row.name !== params.name) continue
			if (params.status !== undefined && row.status !== params.status) continue
			if (params.parentId !== undefined && row.parentId !== params.parentId) continue
			if (jobs.length === params.limit) {
				return { jobs, nextCursor: String(last!.seq) }
			}
			jobs.push(toJobRow(row))
			last = row
		}
		return { jobs, nextCursor: null }
	}

	async getStats(params: { name?: string }): Promise<QueueStats> {
		const total = emptyCounts()
		const byName: Record<string, StatusCounts> = {}
		for (const [name, c] of this.counts) {
			if (params.name !== undefined && name !== params.name) continue
			byName[name] = { ...c }
			for (const s of Object.keys(total) as JobStatus[]) total[s] += c[s]
		}
		return { total, byName }
	}

	async getSteps(params: { jobId: string }): Promise<StepRow[]> {
		const steps = this.rows.get(params.jobId)?.steps
		return steps ? [...steps.values()] : []
	}

	async saveStep(params: {
		jobId: string
		token: string
		stepId: string
		name: string
		state: 'started' | 'completed' | 'failed'
		index?: number | null
		output: JsonText | null
		error: AttemptError | null
		now: number
	}): Promise<boolean> {
		const row = this.held(params.jobId, params.token)
		if (!row) return false
		const prior = row.steps?.get(params.stepId)
		if (prior?.state === 'completed') return true
		const step: StepRow = {
			jobId: params.jobId,
			stepId: params.stepId,
			name: params.name,
			state: params.state,
			index: prior ? prior.index : (params.index ?? null),
			output: params.output,
			error: params.error,
			createdAt: prior?.createdAt ?? params.now,
			updatedAt: params.now,
		}
		this.applyStep(row, step)
		this.journal?.stepSaved(row, step)
		return true
	}

	/** Records a step of a job. */
	applyStep(row: Row, step: StepRow): void {
		row.steps ??= new Map()
		row.steps.set(step.stepId, step)
	}

	/**
	 * Puts back a job as it was saved (a snapshot), with every index. Jobs must come in their
	 * insertion order; pending ones become claimable when their `runAt` comes.
	 */
	restore(row: Row): void {
		row.pendingEpoch = 0
		this.rows.set(row.id, row)
		if (row.seq > this.seq) this.seq = row.seq
		if (row.idempotencyKey !== null) this.idempotency.set(`${row.name}\0${row.idempotencyKey}`, row)
		this.count(row.name)[row.status]++
		const h = this.holders(row)
		if (row.status === 'pending') {
			this.enterPending(row, Number.NEGATIVE_INFINITY)
		} else if (row.status === 'active') {
			this.active.add(row)
			h?.active.add(row)
			if (row.concurrency !== null && row.concurrency.windowMs === null) {
				this.running.set(row.concurrency.key, this.runningOf(row) + 1)
			}
		} else if (row.status === 'waiting') {
			this.waiting.add(row)
		}
		if (h && h.pending.size === 0 && h.active.size === 0) this.dedupe.delete(`${row.name}\0${row.dedupeKey}`)
	}

	/** Active jobs. */
	activeRows(): IterableIterator<Row> {
		return this.active.values()
	}

	/**
	 * While set, pending jobs are not put in the claim queues (a replay of many changes would
	 * fill them with entries made stale by later changes); `rebuildQueues` puts them in after.
	 */
	deferQueues = false

	/** Puts every pending job in its claim queue, after a replay with `deferQueues`. */
	rebuildQueues(): void {
		this.deferQueues = false
		this.queues.clear()
		for (const row of this.rows.values()) {
			row.queuedEpoch = -1
			if (row.status === 'pending') {
				row.pendingEpoch++
				this.queueOf(row.name).delayed.push(queueEntry(row))
			}
		}
	}

	async addWaiter(params: {
		waiter: { id: string; jobId: string; topic: string; match: JsonText | null }
		token: string
		now: number
	}): Promise<boolean> {
		if (!this.held(params.waiter.jobId, params.token)) return false
		if (this.waiters.has(params.waiter.id)) return true
		const waiter = { ...params.waiter, events: [], createdAt: params.now }
		this.applyWaiter(waiter)
		this.journal?.waiterAdded(waiter)
		return true
	}

	/** Registers a waiter (with the events it holds). */
	applyWaiter(waiter: WaiterRow): void {
		this.waiters.set(waiter.id, { ...waiter, events: [...waiter.events] })
		let set = this.waitersByTopic.get(waiter.topic)
		if (!set) {
			set = new Set()
			this.waitersByTopic.set(waiter.topic, set)
		}
		set.add(waiter.id)
	}

	/** Every waiter, for a snapshot. */
	waiterRows(): IterableIterator<WaiterRow> {
		return this.waiters.values()
	}

	async getWaiter(params: { id: string }): Promise<WaiterRow | null> {
		const w = this.waiters.get(params.id)
		return w ? { ...w, events: [...w.events] } : null
	}

	async trimWaiter(params: { id: string; drop: number | 'all' }): Promise<void> {
		if (!this.waiters.has(params.id)) return
		this.applyTrim(params.id, params.drop)
		this.journal?.waiterTrimmed(params.id, params.drop)
	}

	/** Drops the oldest events of a waiter, or the waiter. */
	applyTrim(id: string, drop: number | 'all'): void {
		if (drop === 'all') this.dropWaiter(id)
		else this.waiters.get(id)?.events.splice(0, drop)
	}

	private dropWaiter(id: string): void {
		const w = this.waiters.get(id)
		if (!w) return
		this.waiters.delete(id)
		const set = this.waitersByTopic.get(w.topic)
		set?.delete(id)
		if (set?.size === 0) this.waitersByTopic.delete(w.topic)
	}

	async publish(params: { event: PublishedEvent; now: number }): Promise<string[]> {
		return this.publishNow(params.event, params.now)
	}

	/** Appends an event to the matching waiters and wakes their jobs; journaled as one record. */
	publishNow(event: PublishedEvent, now: number): string[] {
		// No waiter at all: the event's topic is not even read (a completion builds it lazily).
		if (this.waitersByTopic.size === 0) return []
		const ids = this.waitersByTopic.get(event.topic)
		if (!ids || ids.size === 0) return []
		this.journal?.published(event, now)
		return this.applyPublish(event, now)
	}

	/** Applies a published event (also on replay). */
	applyPublish(event: PublishedEvent, now: number): string[] {
		const ids = this.waitersByTopic.get(event.topic)
		if (!ids || ids.size === 0) return []
		const subject = JSON.parse(event.subject) as unknown
		const woken: string[] = []
		for (const id of ids) {
			const w = this.waiters.get(id)!
			const job = this.rows.get(w.jobId)
			if (!job || isTerminal(job.status)) continue
			if (w.match !== null && !matchesPattern(JSON.parse(w.match), subject)) continue
			w.events.push(event.payload)
			if (this.wakeOne(w.jobId, now)) woken.push(w.jobId)
		}
		return woken
	}
}

function first<T>(set: Set<T>): T | undefined {
	for (const v of set) return v
	return undefined
}

function toClaimed(row: Row): ClaimedJob {
	return {
		id: row.id,
		name: row.name,
		input: row.input,
		attempt: row.attempt,
		maxAttempts: row.maxAttempts,
		priority: row.priority,
		parentId: row.parentId,
		backoff: row.backoff,
		createdAt: row.createdAt,
		runAt: row.runAt,
		lease: { owner: row.leaseOwner!, token: row.leaseToken!, expiresAt: row.leaseExpiresAt },
	}
}

function toJobRow(row: Row): JobRow {
	return {
		id: row.id,
		name: row.name,
		input: row.input,
		status: row.status,
		priority: row.priority,
		runAt: row.runAt,
		attempt: row.attempt,
		maxAttempts: row.maxAttempts,
		lease:
			row.status === 'active'
				? { owner: row.leaseOwner!, token: row.leaseToken!, expiresAt: row.leaseExpiresAt }
				: null,
		dedupeKey: row.dedupeKey,
		dedupeScope: row.dedupeScope,
		idempotencyKey: row.idempotencyKey,
		output: row.output,
		errors: [...row.errors],
		logs: [...row.logs],
		parentId: row.parentId,
		backoff: row.backoff,
		createdAt: row.createdAt,
		updatedAt: row.updatedAt,
		startedAt: row.startedAt,
		finishedAt: row.finishedAt,
	}
}
