/**
 * The SQLite storage, on better-sqlite3 in WAL mode. One file, shared safely by several processes
 * on one host: every write is an IMMEDIATE transaction, so claims are exclusive across processes,
 * and `synchronous=FULL` (the default) makes a returned enqueue survive power loss.
 *
 * Enqueues made together share one transaction (group commit, see `enqueue`), and an enqueue can
 * claim for this process's idle worker in the same transaction (`enqueueAndClaim`).
 *
 * better-sqlite3 is synchronous: each method does its work in one transaction and returns. That
 * blocks the event loop for the length of a transaction (tens of microseconds, plus an fsync on
 * commit), which costs less than the thread hop an async driver would add.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs'
import Database from 'better-sqlite3'
import {
	SpoolError,
	StorageCorruptError,
	StorageForeignError,
	StorageUnavailableError,
} from '../../errors.js'
import {
	admitThrottle,
	admitWindow,
	type ConcurrencySpec,
	type DebounceState,
	decideDebounce,
	type ThrottleState,
	type WindowState,
} from '../../flow/limits.js'
import { createLeaseToken } from '../../id.js'
import type { JsonText } from '../../json.js'
import {
	type AttemptError,
	type CancelResult,
	type ClaimedJob,
	type ClaimOrEnqueueResult,
	type ClaimRequest,
	type DedupeScope,
	type EnqueueAndClaimResult,
	type EnqueueResult,
	emptyCounts,
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
	type StepState,
	type Storage,
	type WaiterRow,
} from '../contract.js'
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js'
import { type ClaimedRecord, type JobRecord, SQL, type StepRecord, type WaiterRecord } from './statements.js'

/** Options of the SQLite storage. */
export interface SqliteStorageOptions {
	/** The database file. Created (with its folder) if missing. */
	readonly path: string
	/**
	 * `full` (default): a returned enqueue or outcome survives power loss. `normal`: faster; may
	 * lose the last transactions on power loss (never on a process crash), never corrupts.
	 */
	readonly synchronous?: 'full' | 'normal'
	/** How long to wait for another process's write lock before failing. Default 5000 ms. */
	readonly busyTimeoutMs?: number
	/**
	 * Allow spool's tables in a file that already holds other tables (your app's database).
	 * Default false: such a file is refused, in case it was named by mistake.
	 */
	readonly allowExistingTables?: boolean
	/** How many `ctx.log` lines to keep per job. Default 100. */
	readonly maxLogLines?: number
}

/** A claimable job as claimCandidates returns it. */
interface Candidate {
	seq: number
	priority: number
	run_at: number
	concurrency_key: string | null
	concurrency_limit: number | null
	concurrency_window: number | null
	concurrency_rolling: number | null
}

/** One `enqueue` call waiting for the group commit. */
interface GroupedEnqueue {
	readonly params: { readonly jobs: readonly NewJob[]; readonly now: number; readonly claim?: ClaimRequest }
	readonly resolve: (result: EnqueueAndClaimResult) => void
	readonly reject: (error: unknown) => void
}

const SQLITE_MAGIC = 'SQLite format 3\0'

type Statements = { [K in keyof typeof SQL]: Database.Statement }

export class SqliteStorage implements Storage {
	readonly description: string
	readonly capabilities = { push: false, multiProcess: true } as const
	private db: Database.Database | null = null
	private st: Statements | null = null
	private readonly maxLogLines: number
	/** Enqueues waiting for the group commit's microtask. */
	private enqueues: GroupedEnqueue[] = []

	constructor(private readonly options: SqliteStorageOptions) {
		this.description = `sqlite:${options.path}`
		this.maxLogLines = options.maxLogLines ?? 100
	}

	async open(): Promise<void> {
		if (this.db) return
		const { path } = this.options
		checkHeader(path)
		let db: Database.Database
		try {
			db = new Database(path, { timeout: this.options.busyTimeoutMs ?? 5000 })
		} catch (err) {
			throw new StorageUnavailableError(`Cannot open the SQLite file ${path}: ${(err as Error).message}`, {
				cause: err,
			})
		}
		try {
			this.inspect(db)
			db.pragma('journal_mode = WAL')
			db.pragma(`synchronous = ${this.options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`)
			this.migrate(db)
		} catch (err) {
			db.close()
			throw err
		}
		this.db = db
		this.st = Object.fromEntries(Object.entries(SQL).map(([k, sql]) => [k, db.prepare(sql)])) as Statements
	}

	/** Refuses a damaged, foreign or too-new file before writing anything to it. */
	private inspect(db: Database.Database): void {
		const { path } = this.options
		let tables: string[]
		try {
			tables = (
				db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
			).map((r) => r.name)
		} catch (err) {
			throw new StorageCorruptError(
				`${path} is not a readable SQLite database (${(err as Error).message}). It was left untouched; point spool at another file, or move this one away.`,
				{ cause: err },
			)
		}
		if (tables.includes('spool_meta')) {
			const row = db.prepare("SELECT value FROM spool_meta WHERE key = 'schema_version'").get() as
				| { value: string }
				| undefined
			const version = Number(row?.value)
			if (!Number.isInteger(version)) {
				throw new StorageCorruptError(
					`${path} has a spool_meta table without a schema version. It was left untouched.`,
				)
			}
			if (version > SCHEMA_VERSION) {
				throw new StorageForeignError(
					`${path} was written by a newer spool (schema ${version}; this one knows up to ${SCHEMA_VERSION}). Upgrade spool; the file was left untouched.`,
				)
			}
			return
		}
		const others = tables.filter((t) => !t.startsWith('sqlite_'))
		if (others.length > 0 && !this.options.allowExistingTables) {
			throw new StorageForeignError(
				`${path} already holds tables that are not spool's (${others.slice(0, 5).join(', ')}). It was left untouched. Use another file, or pass allowExistingTables: true to add spool's tables to it.`,
			)
		}
	}

	private migrate(db: Database.Database): void {
		db.transaction(() => {
			db.exec('CREATE TABLE IF NOT EXISTS spool_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
			const row = db.prepare("SELECT value FROM spool_meta WHERE key = 'schema_version'").get() as
				| { value: string }
				| undefined
			const from = row ? Number(row.value) : 0
			for (let v = from; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!)
			db.prepare("INSERT OR REPLACE INTO spool_meta (key, value) VALUES ('schema_version', ?)").run(
				String(SCHEMA_VERSION),
			)
		}).immediate()
	}

	async close(): Promise<void> {
		// Enqueues already called are written, not dropped.
		this.flushEnqueues()
		const db = this.db
		this.db = null
		this.st = null
		db?.close()
	}

	private get s(): Statements {
		if (!this.st) throw new SpoolError('SPOOL_STORAGE_UNAVAILABLE', `${this.description} is not open.`)
		return this.st
	}

	/** Runs `fn` in an IMMEDIATE transaction, turning lock timeouts into a named error. */
	private write<T>(fn: () => T): T {
		const db = this.db
		if (!db)
			throw new StorageUnavailableError(`${this.description} is not open (closed, or open() not awaited).`)
		try {
			return db.transaction(fn).immediate()
		} catch (err) {
			throw wrap(err, this.description)
		}
	}

	private read<T>(fn: () => T): T {
		if (!this.db)
			throw new StorageUnavailableError(`${this.description} is not open (closed, or open() not awaited).`)
		try {
			return fn()
		} catch (err) {
			throw wrap(err, this.description)
		}
	}

	/**
	 * Group commit: an enqueue is written in a microtask, and the enqueues called before it runs
	 * share its transaction (one commit, one fsync), each in a savepoint of its own so one that throws
	 * leaves the others applied. Each resolves only after that commit, so a returned enqueue is as
	 * durable as before; concurrent callers (a web server's requests, `start()` calls not awaited one
	 * by one) stop paying one fsync each. Being a microtask, it is written before any timer or I/O
	 * callback runs (a worker's settle among them), as when enqueues were written at once.
	 */
	async enqueue(params: { jobs: readonly NewJob[]; now: number }): Promise<EnqueueResult[]> {
		return (await this.grouped(params)).results
	}

	/** Enqueues and claims in one transaction (grouped with the other enqueues of its microtask): one commit. */
	async enqueueAndClaim(params: {
		jobs: readonly NewJob[]
		now: number
		claim: ClaimRequest
	}): Promise<EnqueueAndClaimResult> {
		return this.grouped(params)
	}

	private grouped(params: GroupedEnqueue['params']): Promise<EnqueueAndClaimResult> {
		if (!this.db)
			throw new StorageUnavailableError(`${this.description} is not open (closed, or open() not awaited).`)
		return new Promise((resolve, reject) => {
			this.enqueues.push({ params, resolve, reject })
			if (this.enqueues.length === 1) queueMicrotask(() => this.flushEnqueues())
		})
	}

	/** Writes the enqueues gathered so far in one transaction, then settles their promises. */
	private flushEnqueues(): void {
		const batch = this.enqueues
		if (batch.length === 0) return
		this.enqueues = []
		const insert = (p: GroupedEnqueue['params']): EnqueueAndClaimResult => ({
			results: p.jobs.map((job) => this.insertOne(job, p.now)),
			claimed: p.claim ? this.claimIn(p.claim, p.now) : [],
		})
		if (batch.length === 1) {
			const one = batch[0]!
			try {
				one.resolve(this.write(() => insert(one.params)))
			} catch (err) {
				one.reject(err)
			}
			return
		}
		const db = this.db
		const outcomes: ({ ok: true; value: EnqueueAndClaimResult } | { ok: false; error: unknown })[] = []
		try {
			this.write(() => {
				for (const e of batch) {
					try {
						// A nested transaction: a savepoint, rolled back alone if this enqueue throws.
						outcomes.push({ ok: true, value: db!.transaction(() => insert(e.params))() })
					} catch (err) {
						outcomes.push({ ok: false, error: wrap(err, this.description) })
					}
				}
			})
		} catch (err) {
			for (const e of batch) e.reject(err)
			return
		}
		for (let i = 0; i < batch.length; i++) {
			const o = outcomes[i]!
			if (o.ok) batch[i]!.resolve(o.value)
			else batch[i]!.reject(o.error)
		}
	}

	private insertOne(
		job: NewJob,
		now: number,
		lease?: { owner: string; token: string; expiresAt: number },
	): EnqueueResult {
		const s = this.s
		if (
			!lease &&
			job.idempotencyKey === null &&
			job.dedupeKey === null &&
			!job.tick &&
			!job.debounce &&
			!job.throttle &&
			!job.concurrency
		) {
			const inserted = s.insertPlain.run({
				id: job.id,
				name: job.name,
				input: job.input,
				priority: job.priority,
				run_at: job.runAt,
				max_attempts: job.maxAttempts,
				parent_id: job.parentId,
				backoff: job.backoff,
				now,
			})
			return { status: inserted.changes === 1 ? 'created' : 'existing', id: job.id }
		}
		const same = s.idById.get(job.id) as { id: string } | undefined
		if (same) return { status: 'existing', id: same.id }
		if (job.idempotencyKey !== null) {
			const existing = s.idByIdempotency.get(job.name, job.idempotencyKey) as { id: string } | undefined
			if (existing) return { status: 'existing', id: existing.id }
		}
		if (job.dedupeKey !== null) {
			const holders = s.dedupeHolders.all(job.name, job.dedupeKey) as { id: string; status: JobStatus }[]
			const pending = holders.find((h) => h.status === 'pending')
			if (pending) return { status: 'deduped', id: pending.id }
			const active = holders.find((h) => h.status === 'active')
			if (active && job.dedupeScope === 'pending+active') return { status: 'deduped', id: active.id }
		}
		if (job.tick) {
			const key = `tick:${job.tick.key}`
			const last = this.flowState<number>(key)
			if (last !== null && last >= job.tick.at) return { status: 'existing', id: job.id }
			this.setFlowState(key, job.tick.at)
		}
		let runAt = job.runAt
		if (job.debounce && !lease) {
			const key = `d:${job.debounce.key}`
			const state = this.flowState<DebounceState>(key)
			const pending =
				state?.jobId != null &&
				(s.statusOf.get(state.jobId) as { status: JobStatus } | undefined)?.status === 'pending'
			const d = decideDebounce(state, pending, job.debounce, now)
			if (d.kind === 'replace') {
				s.replacePending.run({ id: d.jobId, input: job.input, run_at: d.runAt, now })
				this.setFlowState(key, d.state)
				return { status: 'debounced', id: d.jobId }
			}
			runAt = d.runAt
			this.setFlowState(key, d.trailing ? { ...d.state, jobId: job.id } : d.state)
		}
		if (job.throttle && !lease) {
			const key = `t:${job.throttle.key}`
			const t = admitThrottle(this.flowState<ThrottleState>(key), job.throttle, now, runAt)
			if (!t.ok) return { status: 'throttled', id: this.flowState<string>(`${key}:last`) }
			this.setFlowState(key, t.state)
			this.setFlowState(`${key}:last`, job.id)
			runAt = t.runAt
		}
		const c = job.concurrency ?? null
		s.insert.run({
			id: job.id,
			name: job.name,
			input: job.input,
			status: lease ? 'active' : 'pending',
			priority: job.priority,
			run_at: runAt,
			attempt: lease ? 1 : 0,
			max_attempts: job.maxAttempts,
			lease_owner: lease?.owner ?? null,
			lease_token: lease?.token ?? null,
			lease_expires_at: lease?.expiresAt ?? null,
			dedupe_key: job.dedupeKey,
			dedupe_scope: job.dedupeKey === null ? null : job.dedupeScope,
			idempotency_key: job.idempotencyKey,
			parent_id: job.parentId,
			backoff: job.backoff,
			concurrency_key: c?.key ?? null,
			concurrency_limit: c?.limit ?? null,
			concurrency_window: c?.windowMs ?? null,
			concurrency_rolling: c ? (c.rolling ? 1 : 0) : null,
			now,
			started_at: lease ? now : null,
		})
		return { status: 'created', id: job.id }
	}

	private flowState<T>(key: string): T | null {
		const row = this.s.getFlow.get(key) as { state: string } | undefined
		return row ? (JSON.parse(row.state) as T) : null
	}

	private setFlowState(key: string, state: unknown, until: number | null = null): void {
		this.s.setFlow.run({ key, state: JSON.stringify(state), until })
	}

	async claim(params: {
		names: readonly string[]
		owner: string
		limit: number
		leaseMs: number
		now: number
	}): Promise<ClaimedJob[]> {
		if (params.names.length === 0 || params.limit <= 0) return []
		return this.write(() => this.claimIn(params, params.now))
	}

	/** Claims inside the caller's transaction. */
	private claimIn(params: ClaimRequest, now: number): ClaimedJob[] {
		if (params.names.length === 0 || params.limit <= 0) return []
		const token = createLeaseToken()
		const expiresAt = now + params.leaseMs
		const s = this.s
		// Sleepers of these names whose time came are claimable now, without waiting for reap.
		s.wakeDueNames.run({ names: JSON.stringify(params.names), now })
		// One name: the first pass in one statement, taking the jobs without keys among the first
		// `limit` due ones. When it took `limit`, or no keyed job is due, the claim is done.
		const rows: ClaimedRecord[] =
			params.names.length === 1
				? (s.claimFast.all({
						name: params.names[0],
						owner: params.owner,
						token,
						expires: expiresAt,
						now,
						limit: params.limit,
					}) as ClaimedRecord[])
				: []
		const keyed =
			params.names.length !== 1 ||
			(rows.length < params.limit && s.keyedDue.get({ name: params.names[0], now }) !== undefined)
		// (More) passes: each takes at most one job per concurrency key, so the counts the candidate
		// query saw stay true; a key with room for more is seen again by the next pass.
		while (keyed && rows.length < params.limit) {
			const want = params.limit - rows.length
			const candidates = this.candidates(params.names, now, want)
			const seen = new Set<string>()
			const chosen: number[] = []
			let deferred = false
			for (const c of candidates) {
				if (c.concurrency_key === null) {
					chosen.push(c.seq)
					continue
				}
				if (seen.has(c.concurrency_key)) {
					deferred = true
					continue
				}
				seen.add(c.concurrency_key)
				if (c.concurrency_window !== null) {
					const spec: ConcurrencySpec = {
						key: c.concurrency_key,
						limit: c.concurrency_limit!,
						windowMs: c.concurrency_window,
						rolling: c.concurrency_rolling === 1,
					}
					const key = `c:${spec.key}`
					const r = admitWindow(this.flowState<WindowState>(key), spec, now)
					if (!r.ok) continue
					this.setFlowState(key, r.state, r.until)
				}
				chosen.push(c.seq)
			}
			if (chosen.length > 0) {
				rows.push(
					...(s.claimSeqs.all({
						seqs: JSON.stringify(chosen),
						owner: params.owner,
						token,
						expires: expiresAt,
						now,
					}) as ClaimedRecord[]),
				)
			}
			if (!deferred || chosen.length === 0) break
		}
		// RETURNING does not keep the subquery's order: restore claim order.
		rows.sort((a, b) => a.priority - b.priority || a.run_at - b.run_at || a.seq - b.seq)
		return rows.map((r) => toClaimed(r))
	}

	/**
	 * The first `limit` candidates of the names in claim order: each name's first `limit` (one
	 * seek into the per-name claim index each), merged.
	 */
	private candidates(names: readonly string[], now: number, limit: number): Candidate[] {
		const s = this.s
		if (names.length === 1) return s.claimCandidates.all({ name: names[0], now, limit }) as Candidate[]
		const all: Candidate[] = []
		for (const name of new Set(names))
			all.push(...(s.claimCandidates.all({ name, now, limit }) as Candidate[]))
		all.sort((a, b) => a.priority - b.priority || a.run_at - b.run_at || a.seq - b.seq)
		return all.length > limit ? all.slice(0, limit) : all
	}

	async claimOrEnqueue(params: {
		job: NewJob & { dedupeKey: string }
		owner: string
		leaseMs: number
		now: number
	}): Promise<ClaimOrEnqueueResult> {
		const { job, now } = params
		const lease = { owner: params.owner, token: createLeaseToken(), expiresAt: now + params.leaseMs }
		return this.write((): ClaimOrEnqueueResult => {
			const s = this.s
			const holders = s.dedupeHolders.all(job.name, job.dedupeKey) as { id: string; status: JobStatus }[]
			const pending = holders.find((h) => h.status === 'pending')
			const active = holders.find((h) => h.status === 'active')
			if (active) {
				if (pending) return { status: 'deduped', id: pending.id }
				if (job.dedupeScope === 'pending+active') return { status: 'deduped', id: active.id }
				const queued = this.insertOne({ ...job, dedupeScope: 'pending' }, now)
				return queued.status === 'created'
					? { status: 'enqueued', id: job.id }
					: { status: 'deduped', id: queued.id ?? job.id }
			}
			if (pending) {
				const row = s.claimById.get({
					id: pending.id,
					owner: lease.owner,
					token: lease.token,
					expires: lease.expiresAt,
					now,
				}) as JobRecord
				return { status: 'claimed', job: toClaimed(row) }
			}
			const inserted = this.insertOne(job, now, lease)
			if (inserted.status !== 'created') return { status: 'deduped', id: inserted.id ?? job.id }
			return { status: 'claimed', job: toClaimed(s.getJob.get(job.id) as JobRecord) }
		})
	}

	async heartbeat(params: {
		leases: readonly { id: string; token: string }[]
		leaseMs: number
		now: number
	}): Promise<string[]> {
		const expires = params.now + params.leaseMs
		return this.write(() => {
			const lost: string[] = []
			for (const { id, token } of params.leases) {
				if (this.s.heartbeat.run(expires, params.now, id, token).changes === 0) lost.push(id)
			}
			return lost
		})
	}

	async settle(params: {
		outcomes: readonly Outcome[]
		logs?: ReadonlyMap<string, readonly string[]>
		now: number
	}): Promise<SettleResult[]> {
		return this.write(() => this.settleIn(params))
	}

	/** Settles and claims in one IMMEDIATE transaction: one commit, one fsync for both. */
	async settleAndClaim(params: {
		outcomes: readonly Outcome[]
		logs?: ReadonlyMap<string, readonly string[]>
		now: number
		claim: ClaimRequest
	}): Promise<SettleAndClaimResult> {
		return this.write(() => ({
			settled: this.settleIn(params),
			claimed: this.claimIn(params.claim, params.now),
		}))
	}

	/** Applies outcomes inside the caller's transaction. */
	private settleIn(params: {
		outcomes: readonly Outcome[]
		logs?: ReadonlyMap<string, readonly string[]>
		now: number
	}): SettleResult[] {
		const { now } = params
		const s = this.s
		if (params.logs) {
			for (const [id, lines] of params.logs) {
				const row = s.getLogs.get(id) as { logs: string } | undefined
				if (!row) continue
				const logs = (JSON.parse(row.logs) as string[]).concat(lines)
				s.setLogs.run(JSON.stringify(logs.slice(-this.maxLogLines)), id)
			}
		}
		return params.outcomes.map((o) => {
			let parent: { parent_id: string | null } | undefined
			switch (o.kind) {
				case 'completed':
					parent = (o.remove ? s.completeDelete : s.complete).get(
						o.remove ? { id: o.id, token: o.token } : { id: o.id, token: o.token, output: o.output, now },
					) as { parent_id: string | null } | undefined
					if (parent && o.event) this.publishIn(o.event, now)
					break
				case 'retry':
					parent = s.retry.get({
						id: o.id,
						token: o.token,
						error: JSON.stringify(o.error),
						run_at: o.runAt,
						now,
					}) as { parent_id: string | null } | undefined
					// A retry is not terminal: the parent keeps waiting.
					return { id: o.id, ok: parent !== undefined }
				case 'dead':
					parent = s.dead.get({ id: o.id, token: o.token, error: JSON.stringify(o.error), now }) as
						| { parent_id: string | null }
						| undefined
					break
				case 'suspended': {
					const arrived =
						(o.children?.length || o.waiters?.length) &&
						s.arrived.get({
							children: JSON.stringify(o.children ?? []),
							waiters: JSON.stringify(o.waiters ?? []),
						}) !== undefined
					const ok =
						s.suspend.run({ id: o.id, token: o.token, run_at: o.wakeAt ?? Number.MAX_SAFE_INTEGER, now })
							.changes === 1
					// What it waits for came while it ran: pending again at once.
					if (ok && arrived) s.wake.run({ id: o.id, now })
					return { id: o.id, ok }
				}
				case 'released':
					return { id: o.id, ok: s.release.run({ id: o.id, token: o.token, now }).changes === 1 }
			}
			if (!parent) return { id: o.id, ok: false }
			if (parent.parent_id !== null) s.wake.run({ id: parent.parent_id, now })
			if (o.kind === 'completed') for (const job of o.followUps ?? []) this.insertOne(job, now)
			return { id: o.id, ok: true }
		})
	}

	async reap(params: { now: number; limit: number }): Promise<{
		requeued: string[]
		dead: string[]
		woken: string[]
	}> {
		const { now, limit } = params
		return this.write(() => {
			const s = this.s
			const requeued: string[] = []
			const dead: string[] = []
			const expired = s.expired.all(now, limit) as {
				id: string
				attempt: number
				max_attempts: number
				lease_owner: string
				parent_id: string | null
			}[]
			for (const row of expired) {
				const error: AttemptError = {
					attempt: row.attempt,
					name: 'LeaseLostError',
					message: `The worker '${row.lease_owner}' stopped heartbeating (crashed or stalled) and its lease expired.`,
					code: 'SPOOL_LEASE_LOST',
					at: now,
				}
				if (row.attempt >= row.max_attempts) {
					s.reapDead.run({ id: row.id, error: JSON.stringify(error), now })
					if (row.parent_id !== null) s.wake.run({ id: row.parent_id, now })
					dead.push(row.id)
				} else {
					s.reapRequeue.run({ id: row.id, error: JSON.stringify(error), now })
					requeued.push(row.id)
				}
			}
			const woken = (s.wakeDue.all({ now, limit }) as { id: string }[]).map((r) => r.id)
			return { requeued, dead, woken }
		})
	}

	async wake(params: { ids: readonly string[]; now: number }): Promise<string[]> {
		return this.write(() => params.ids.filter((id) => this.s.wake.run({ id, now: params.now }).changes === 1))
	}

	async cancel(params: { id: string; now: number }): Promise<CancelResult> {
		return this.write((): CancelResult => {
			const s = this.s
			const row = s.statusOf.get(params.id) as { status: JobStatus; parent_id: string | null } | undefined
			if (!row) return { status: 'not-found' }
			if (row.status === 'completed' || row.status === 'dead' || row.status === 'cancelled') {
				return { status: 'finished', current: row.status }
			}
			s.cancel.run({ id: params.id, now: params.now })
			if (row.parent_id !== null) s.wake.run({ id: row.parent_id, now: params.now })
			return { status: 'cancelled', previous: row.status }
		})
	}

	async replay(params: ({ ids: readonly string[] } | { name: string }) & { now: number }): Promise<string[]> {
		return this.write(() => {
			const rows =
				'ids' in params
					? (this.s.replayIds.all({ ids: JSON.stringify(params.ids), now: params.now }) as {
							id: string
							seq: number
						}[])
					: (this.s.replayName.all({ name: params.name, now: params.now }) as { id: string; seq: number }[])
			return rows.sort((a, b) => a.seq - b.seq).map((r) => r.id)
		})
	}

	async prune(params: {
		statuses: readonly ('completed' | 'dead' | 'cancelled')[]
		before: number
		limit: number
		name?: string
	}): Promise<number> {
		return this.write(
			() =>
				this.s.prune.run({
					statuses: JSON.stringify(params.statuses),
					before: params.before,
					limit: params.limit,
					name: params.name ?? null,
				}).changes,
		)
	}

	async setPaused(params: { name: string; paused: boolean; now: number }): Promise<void> {
		this.write(() => {
			if (params.paused) this.s.pause.run({ name: params.name, now: params.now })
			else this.s.resume.run(params.name)
		})
	}

	async listPaused(): Promise<string[]> {
		return this.read(() => (this.s.listPaused.all() as { name: string }[]).map((r) => r.name))
	}

	async lastTick(params: { key: string }): Promise<number | null> {
		return this.read(() => this.flowState<number>(`tick:${params.key}`))
	}

	async getJob(params: { id: string }): Promise<JobRow | null> {
		const row = this.read(() => this.s.getJob.get(params.id) as JobRecord | undefined)
		return row ? toJobRow(row) : null
	}

	async listJobs(params: {
		name?: string
		status?: JobStatus
		parentId?: string
		limit: number
		cursor?: string | null
	}): Promise<JobPage> {
		const below = params.cursor ? Number(params.cursor) : Number.MAX_SAFE_INTEGER
		const rows = this.read(
			() =>
				this.s.listJobs.all({
					below,
					name: params.name ?? null,
					status: params.status ?? null,
					parent: params.parentId ?? null,
					limit: params.limit + 1,
				}) as (JobRecord & { seq: number })[],
		)
		const more = rows.length > params.limit
		const page = more ? rows.slice(0, params.limit) : rows
		return { jobs: page.map(toJobRow), nextCursor: more ? String(page[page.length - 1]!.seq) : null }
	}

	async getStats(params: { name?: string }): Promise<QueueStats> {
		const rows = this.read(
			() =>
				this.s.stats.all({ name: params.name ?? null }) as { name: string; status: JobStatus; n: number }[],
		)
		const total = emptyCounts()
		const byName: Record<string, StatusCounts> = {}
		for (const r of rows) {
			byName[r.name] ??= emptyCounts()
			byName[r.name]![r.status] += r.n
			total[r.status] += r.n
		}
		return { total, byName }
	}

	async getSteps(params: { jobId: string }): Promise<StepRow[]> {
		const rows = this.read(() => this.s.getSteps.all(params.jobId) as StepRecord[])
		return rows.map((r) => ({
			jobId: r.job_id,
			stepId: r.step_id,
			name: r.name,
			state: r.state,
			index: r.idx,
			output: r.output as JsonText | null,
			error: r.error === null ? null : (JSON.parse(r.error) as AttemptError),
			createdAt: r.created_at,
			updatedAt: r.updated_at,
		}))
	}

	async saveStep(params: {
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
		return this.write(() => {
			const s = this.s
			if (!s.holds.get(params.jobId, params.token)) return false
			s.saveStep.run({
				job_id: params.jobId,
				step_id: params.stepId,
				name: params.name,
				state: params.state,
				idx: params.index ?? null,
				output: params.output,
				error: params.error === null ? null : JSON.stringify(params.error),
				now: params.now,
			})
			return true
		})
	}

	async addWaiter(params: {
		waiter: { id: string; jobId: string; topic: string; match: JsonText | null }
		token: string
		now: number
	}): Promise<boolean> {
		return this.write(() => {
			const s = this.s
			if (!s.holds.get(params.waiter.jobId, params.token)) return false
			const w = params.waiter
			s.addWaiter.run({ id: w.id, job_id: w.jobId, topic: w.topic, match: w.match, now: params.now })
			return true
		})
	}

	async getWaiter(params: { id: string }): Promise<WaiterRow | null> {
		const r = this.read(() => this.s.getWaiter.get(params.id) as WaiterRecord | undefined)
		if (!r) return null
		return {
			id: r.id,
			jobId: r.job_id,
			topic: r.topic,
			match: r.match as JsonText | null,
			events: (JSON.parse(r.events) as unknown[]).map((e) => JSON.stringify(e) as JsonText),
			createdAt: r.created_at,
		}
	}

	async trimWaiter(params: { id: string; drop: number | 'all' }): Promise<void> {
		this.write(() => {
			const s = this.s
			if (params.drop === 'all') {
				s.deleteWaiter.run(params.id)
				return
			}
			const r = s.getWaiter.get(params.id) as WaiterRecord | undefined
			if (!r) return
			const events = JSON.parse(r.events) as unknown[]
			s.setWaiterEvents.run(JSON.stringify(events.slice(params.drop)), params.id)
		})
	}

	async publish(params: { event: PublishedEvent; now: number }): Promise<string[]> {
		return this.write(() => this.publishIn(params.event, params.now))
	}

	/** Appends an event to the matching waiters and wakes their jobs; inside a write transaction. */
	private publishIn(event: PublishedEvent, now: number): string[] {
		const s = this.s
		const waiters = s.waitersOf.all(event.topic) as Pick<WaiterRecord, 'id' | 'job_id' | 'match' | 'events'>[]
		if (waiters.length === 0) return []
		const subject = JSON.parse(event.subject) as unknown
		const woken: string[] = []
		for (const w of waiters) {
			if (w.match !== null && !matchesPattern(JSON.parse(w.match), subject)) continue
			const events = JSON.parse(w.events) as unknown[]
			events.push(JSON.parse(event.payload))
			s.setWaiterEvents.run(JSON.stringify(events), w.id)
			if (s.wake.run({ id: w.job_id, now }).changes === 1) woken.push(w.job_id)
		}
		return woken
	}
}

/** Refuses a file that is not SQLite at all, before the driver touches it. */
function checkHeader(path: string): void {
	if (!existsSync(path)) return
	const size = statSync(path).size
	if (size === 0) return
	const fd = openSync(path, 'r')
	try {
		const buf = Buffer.alloc(16)
		const n = readSync(fd, buf, 0, 16, 0)
		if (n < 16 || buf.toString('latin1') !== SQLITE_MAGIC) {
			throw new StorageCorruptError(
				`${path} is not a SQLite database (its header is wrong: damaged, or some other kind of file). It was left untouched; point spool at another file.`,
			)
		}
	} finally {
		closeSync(fd)
	}
}

function wrap(err: unknown, where: string): Error {
	if (err instanceof SpoolError) return err
	const code = (err as { code?: unknown }).code
	if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
		return new StorageUnavailableError(
			`${where} stayed locked by another process past the busy timeout; the operation will be retried.`,
			{ cause: err },
		)
	}
	if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') {
		return new StorageCorruptError(`${where} is damaged: ${(err as Error).message}`, { cause: err })
	}
	return err instanceof Error ? err : new Error(String(err))
}

function toClaimed(r: ClaimedRecord): ClaimedJob {
	return {
		id: r.id,
		name: r.name,
		input: r.input as JsonText,
		attempt: r.attempt,
		maxAttempts: r.max_attempts,
		priority: r.priority,
		parentId: r.parent_id,
		backoff: r.backoff as JsonText | null,
		createdAt: r.created_at,
		runAt: r.run_at,
		lease: { owner: r.lease_owner!, token: r.lease_token!, expiresAt: r.lease_expires_at! },
	}
}

function toJobRow(r: JobRecord): JobRow {
	return {
		id: r.id,
		name: r.name,
		input: r.input as JsonText,
		status: r.status,
		priority: r.priority,
		runAt: r.run_at,
		attempt: r.attempt,
		maxAttempts: r.max_attempts,
		lease:
			r.status === 'active' && r.lease_token !== null
				? { owner: r.lease_owner!, token: r.lease_token, expiresAt: r.lease_expires_at! }
				: null,
		dedupeKey: r.dedupe_key,
		dedupeScope: r.dedupe_scope as DedupeScope | null,
		idempotencyKey: r.idempotency_key,
		output: r.output as JsonText | null,
		errors: JSON.parse(r.errors) as AttemptError[],
		logs: JSON.parse(r.logs) as string[],
		parentId: r.parent_id,
		backoff: r.backoff as JsonText | null,
		createdAt: r.created_at,
		updatedAt: r.updated_at,
		startedAt: r.started_at,
		finishedAt: r.finished_at,
	}
}
