/**
 * The PostgreSQL storage, on the `pg` driver. Any number of worker processes on any number of
 * hosts share one database: claims take rows with `FOR UPDATE SKIP LOCKED` so a job goes to one
 * claimer, every change to an active job is compare-and-set on its lease token (fencing), and the
 * reaper is one statement safe to run everywhere at once. Each hot method is one statement, one
 * round trip: a claim of a batch, a settle of a batch of outcomes, a bulk enqueue.
 */
import pg from 'pg'
import { ConfigError, SpoolError, StorageUnavailableError } from '../../errors.js'
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
import { consoleLogger, type Logger } from '../../logger.js'
import {
	type AttemptError,
	type CancelResult,
	type ClaimedJob,
	type ClaimOrEnqueueResult,
	type ClaimRequest,
	type DedupeScope,
	type EnqueueResult,
	emptyCounts,
	type JobPage,
	type JobRow,
	type JobStatus,
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
import { EnqueueBatcher } from './batch.js'
import { checkin, checkout } from './connection.js'
import { Listener } from './listener.js'
import { migrateWith } from './migrate.js'
import { channelOf, checkSchema, type QueryName, queriesFor } from './sql.js'

/**
 * A connection that can run a query: a `pg.Client`, a `pg.PoolClient`, or anything with pg's
 * `query(text, values)`. Given as `tx` to enqueue inside the caller's own transaction.
 */
export interface PgQueryable {
	query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>
}

/** Options of the PostgreSQL storage. */
export interface PostgresStorageOptions {
	/** Where to connect. Defaults to `DATABASE_URL` when neither this nor `pool` is given. */
	readonly connectionString?: string
	/** A pool of your own (spool does not end it on close). */
	readonly pool?: pg.Pool
	/** The schema holding spool's tables. Default `spool`. */
	readonly schema?: string
	/**
	 * `'auto'` (default): apply missing migrations at open (safe from many processes at once).
	 * `false`: run `spool migrate` yourself; open fails if the schema is not up to date.
	 */
	readonly migrate?: 'auto' | false
	/** Connections of the pool spool makes (ignored with `pool`). Default 10. */
	readonly poolSize?: number
	/** Listen for NOTIFY wake-ups from other processes. Default true. */
	readonly listen?: boolean
	/** How many `ctx.log` lines to keep per job. Default 100. */
	readonly maxLogLines?: number
	/** Where connection trouble is reported. Default: warnings to stderr. */
	readonly logger?: Logger
}

/** `int8` (bigint) and `int8[]` as numbers: spool's times are ms since epoch, well within 2^53. */
const TYPES = {
	getTypeParser(oid: number, format?: string) {
		if (oid === 20) return Number
		return format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : pg.types.getTypeParser(oid, 'text')
	},
}

/** A waiting job with no wake time waits forever (until woken): the largest safe integer. */
const NEVER = Number.MAX_SAFE_INTEGER

interface JobRecord {
	seq: number
	id: string
	name: string
	input: string
	status: JobStatus
	priority: number
	run_at: number
	attempt: number
	max_attempts: number
	lease_owner: string | null
	lease_token: string | null
	lease_expires_at: number | null
	dedupe_key: string | null
	dedupe_scope: string | null
	idempotency_key: string | null
	output: string | null
	errors: AttemptError[]
	logs: string[]
	parent_id: string | null
	backoff: string | null
	created_at: number
	updated_at: number
	started_at: number | null
	finished_at: number | null
}

type ClaimRecord = Pick<
	JobRecord,
	'id' | 'name' | 'input' | 'attempt' | 'max_attempts' | 'priority' | 'parent_id' | 'backoff' | 'created_at'
> & { run_at: number; seq: number }

/** Runs a named query on one connection (the pool's, a transaction's, or the caller's `tx`). */
type Runner = <R>(name: QueryName, values: unknown[]) => Promise<R[]>

interface KeyedCandidate {
	seq: number
	concurrency_key: string
	concurrency_limit: number
	concurrency_window: number | null
	concurrency_rolling: boolean | null
}

interface StepRecord {
	job_id: string
	step_id: string
	name: string
	state: StepState
	idx: number | null
	output: string | null
	error: AttemptError | null
	created_at: number
	updated_at: number
}

export class PostgresStorage implements Storage {
	readonly description: string
	readonly capabilities = {
		push: true,
		multiProcess: true,
		transactionalEnqueue: true,
	} as const
	readonly schema: string
	private pool: pg.Pool | null = null
	private readonly ownPool: boolean
	private readonly sql: Record<QueryName, string>
	private readonly names: Record<QueryName, string>
	private readonly logger: Logger
	private readonly maxLogLines: number
	private opening: Promise<void> | null = null
	private listener: Listener | null = null
	private readonly subscribers = new Set<() => void>()
	private closed = false

	constructor(private readonly options: PostgresStorageOptions) {
		this.schema = checkSchema(options.schema ?? 'spool')
		const connectionString = options.connectionString ?? (options.pool ? undefined : process.env.DATABASE_URL)
		if (!options.pool && !connectionString) {
			throw new ConfigError(
				'postgres() needs a connectionString or a pool (or the DATABASE_URL environment variable).',
			)
		}
		if (options.poolSize !== undefined && !(Number.isInteger(options.poolSize) && options.poolSize >= 2)) {
			throw new ConfigError(`poolSize must be a whole number >= 2, got ${options.poolSize}.`)
		}
		this.ownPool = !options.pool
		this.description = `postgres:${options.pool ? 'pool' : redact(connectionString!)}/${this.schema}`
		this.sql = queriesFor(this.schema)
		this.names = Object.fromEntries(
			Object.keys(this.sql).map((k) => [k, `spool:${this.schema}:${k}`]),
		) as Record<QueryName, string>
		this.logger = options.logger ?? consoleLogger()
		this.maxLogLines = options.maxLogLines ?? 100
		this.connectionString = connectionString
	}

	private readonly connectionString: string | undefined

	open(): Promise<void> {
		if (this.closed) return Promise.reject(new StorageUnavailableError(`${this.description} is closed.`))
		this.opening ??= this.doOpen().catch((err) => {
			this.opening = null
			throw err
		})
		return this.opening
	}

	private async doOpen(): Promise<void> {
		const pool =
			this.options.pool ??
			new pg.Pool({
				connectionString: this.connectionString,
				// No bitmap scans on spool's own connections. Right after a backlog arrives (a bulk enqueue,
				// a burst) the table's statistics still say few jobs are pending, and the planner then
				// answers a claim by reading every pending row through a bitmap scan and sorting them,
				// instead of walking the claim index in order and stopping at the limit: each claim costs
				// O(backlog) until autovacuum analyzes the table (bench/postgres: 42 ms -> 13 ms per claim
				// of 10 with 10,000 pending). spool's statements never need a bitmap scan.
				options: '-c enable_bitmapscan=off',
				max: this.options.poolSize ?? 10,
				keepAlive: true,
				idleTimeoutMillis: 30_000,
			})
		// An idle connection that drops (a restart, pg_terminate_backend) emits 'error' on the pool; without
		// a listener that would crash the process. The next query simply gets a new connection.
		if (this.ownPool || pool.listenerCount('error') === 0) {
			pool.on('error', (err) =>
				this.logger.warn({ err }, `spool: an idle PostgreSQL connection dropped (${err.message}).`),
			)
		}
		try {
			if (this.options.migrate === false) await this.checkVersion(pool)
			else await migrateWith(pool, this.schema)
		} catch (err) {
			if (this.ownPool) await pool.end().catch(() => {})
			throw wrap(err, this.description)
		}
		this.pool = pool
		if (this.subscribers.size > 0) this.startListener()
	}

	private async checkVersion(pool: pg.Pool): Promise<void> {
		const { latestVersion } = await import('./migrate.js')
		let version = 0
		try {
			const r = await pool.query<{ v: number | null }>(
				`SELECT max(version) AS v FROM "${this.schema}".migrations`,
			)
			version = r.rows[0]?.v ?? 0
		} catch (err) {
			if ((err as { code?: string }).code !== '42P01') throw err
		}
		const latest = latestVersion(this.schema)
		if (version !== latest) {
			throw new SpoolError(
				'SPOOL_STORAGE_FOREIGN',
				`The PostgreSQL schema "${this.schema}" is at version ${version}, this spool needs ${latest}. Run \`spool migrate\` (or pass migrate: 'auto').`,
			)
		}
	}

	async close(): Promise<void> {
		this.closed = true
		this.listener?.stop()
		this.listener = null
		// Enqueues already called are written before the pool ends.
		await Promise.all([this.batcher.drain(), this.keyedBatcher.drain()])
		const pool = this.pool
		this.pool = null
		if (this.opening) await this.opening.catch(() => {})
		const p = pool ?? this.pool
		if (p && this.ownPool) await p.end().catch(() => {})
	}

	subscribe(listener: () => void): () => void {
		this.subscribers.add(listener)
		if (this.pool && !this.listener) this.startListener()
		return () => {
			this.subscribers.delete(listener)
			if (this.subscribers.size === 0) {
				this.listener?.stop()
				this.listener = null
			}
		}
	}

	private startListener(): void {
		if (this.options.listen === false || !this.pool || this.listener) return
		this.listener = new Listener(
			this.pool,
			channelOf(this.schema),
			this.logger,
			() => {
				for (const s of this.subscribers) s()
			},
			// This storage's own enqueues: the queue that made them wakes its worker itself, after
			// the enqueue's hooks ran (a NOTIFY read first would let the worker start the job before
			// its onTrigger hook).
			(pid) => this.ownInserts.has(pid),
		)
		this.listener.start()
	}

	/** Runs a named query (a prepared statement per connection: one round trip per call). */
	private async q<R>(name: QueryName, values: unknown[]): Promise<R[]> {
		const pool = this.pool
		if (!pool) {
			throw new StorageUnavailableError(`${this.description} is not open (closed, or open() not awaited).`)
		}
		try {
			const r = await pool.query({ name: this.names[name], text: this.sql[name], values, types: TYPES })
			return r.rows as R[]
		} catch (err) {
			throw wrap(err, this.description)
		}
	}

	async enqueue(params: { jobs: readonly NewJob[]; now: number; tx?: unknown }): Promise<EnqueueResult[]> {
		const { jobs, now } = params
		if (jobs.length === 0) return []
		const tx = params.tx as PgQueryable | undefined
		if (tx !== undefined && (tx === null || typeof tx.query !== 'function')) {
			throw new ConfigError(
				'tx must be a pg client (or anything with query(text, values)) inside a transaction.',
			)
		}
		const run = async <R>(name: QueryName, values: unknown[]): Promise<R[]> => {
			if (!tx) return this.enqueueRunner<R>(name, values)
			try {
				return (await tx.query(this.sql[name], values)).rows as R[]
			} catch (err) {
				throw wrap(err, this.description)
			}
		}
		if (!tx && needsTransaction(jobs)) return this.transaction((r) => this.enqueueWith(r, jobs, now))
		// Small enqueues outside a transaction share commits with concurrent ones.
		if (!tx && jobs.length <= GROUP_COMMIT_MAX) {
			if (hasKeys(jobs) || !distinctIds(jobs)) return this.keyedBatcher.add(jobs, now)
			return this.batcher.add(jobs, now)
		}
		return this.enqueueWith(run, jobs, now, !tx)
	}

	/** Concurrent small keyless enqueues outside transactions, written together (see batch.ts). */
	private readonly batcher = new EnqueueBatcher(
		(jobs, now) => this.insertPlain(this.enqueueRunner, jobs, now, true),
		true,
	)

	/** The same for enqueues with idempotency or dedupe keys (or ids repeated in a call). */
	private readonly keyedBatcher = new EnqueueBatcher(
		(jobs, now) => this.insertKeyed(this.enqueueRunner, jobs, now),
		false,
	)

	/**
	 * Enqueues on one connection; jobs with flow options need it to be inside a transaction.
	 * `autocommit`: each statement runs on its own (the pool, no transaction), so one that fails
	 * undoes nothing else and may be retried another way.
	 */
	private async enqueueWith(
		run: Runner,
		jobs: readonly NewJob[],
		now: number,
		autocommit = false,
	): Promise<EnqueueResult[]> {
		if (needsTransaction(jobs)) {
			const out: EnqueueResult[] = []
			for (const job of jobs) out.push(await this.enqueueFlow(run, job, now))
			return out
		}
		// Outside a transaction the plain insert finds duplicate ids itself (unique_violation).
		if (!hasKeys(jobs) && (autocommit || distinctIds(jobs))) {
			return this.insertPlain(run, jobs, now, autocommit)
		}
		return this.insertKeyed(run, jobs, now)
	}

	/**
	 * Jobs with keys (or ids repeated in the batch), one after another in one statement. `now`: one
	 * time for all, or one per job (a batch of several calls).
	 */
	private async insertKeyed(
		run: Runner,
		jobs: readonly NewJob[],
		now: number | readonly number[],
	): Promise<EnqueueResult[]> {
		const records =
			typeof now === 'number'
				? jobs.map(toKeyedRecord)
				: jobs.map((j, i) => ({ ...toKeyedRecord(j), now: now[i]! }))
		const rows = await run<{ status: EnqueueResult['status']; id: string }>('enqueueKeyed', [
			JSON.stringify(records),
			typeof now === 'number' ? now : now[0]!,
		])
		return rows.map((r) => ({ status: r.status, id: r.id }) as EnqueueResult)
	}

	/**
	 * Inserts jobs without keys in one statement. `now`: one time for all, or one per job (a batch
	 * of several calls, whose ids are distinct). `autocommit`: see enqueueWith; without it the ids
	 * must be distinct.
	 */
	private async insertPlain(
		run: Runner,
		jobs: readonly NewJob[],
		now: number | readonly number[],
		autocommit: boolean,
	): Promise<EnqueueResult[]> {
		const values = insertValues(jobs, now)
		if (autocommit) {
			try {
				await run('insertManyFresh', values)
				return jobs.map((j) => ({ status: 'created', id: j.id }))
			} catch (err) {
				// An id that exists already: the statement inserted nothing; insertMany sorts it out.
				if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err
			}
			// Or an id given twice in this call: the first is created, the others find it.
			if (!distinctIds(jobs)) return this.insertKeyed(run, jobs, now)
		}
		const rows = await run<{ id: string }>('insertMany', values)
		const created = new Set(rows.map((r) => r.id))
		// No keys: a job not inserted had an id that exists already.
		return jobs.map((j) => ({ status: created.has(j.id) ? 'created' : 'existing', id: j.id }))
	}

	/**
	 * One job with flow options, inside a transaction: its flow keys are locked (advisory locks,
	 * so every process agrees), their state read and decided on (src/flow/limits.ts), the job
	 * inserted, and the state saved only if it was.
	 */
	private async enqueueFlow(run: Runner, job: NewJob, now: number): Promise<EnqueueResult> {
		const tickKey = job.tick ? `tick:${job.tick.key}` : null
		const dKey = job.debounce ? `d:${job.debounce.key}` : null
		const tKey = job.throttle ? `t:${job.throttle.key}` : null
		const keys = [tickKey, dKey, tKey].filter((k): k is string => k !== null)
		const states = new Map<string, unknown>()
		if (keys.length > 0) {
			await run('lockKeys', [keys])
			const all = tKey ? [...keys, `${tKey}:last`] : keys
			for (const r of await run<{ key: string; state: unknown }>('getFlows', [all]))
				states.set(r.key, r.state)
		}
		const writes: [string, unknown][] = []
		if (job.tick && tickKey) {
			const last = states.get(tickKey) as number | undefined
			if (last !== undefined && last >= job.tick.at) return { status: 'existing', id: job.id }
			writes.push([tickKey, job.tick.at])
		}
		let runAt = job.runAt
		if (job.debounce && dKey) {
			const state = (states.get(dKey) as DebounceState | undefined) ?? null
			let pending = false
			if (state?.jobId) {
				const [row] = await run<{ status: JobStatus }>('jobStatus', [state.jobId])
				pending = row?.status === 'pending'
			}
			const d = decideDebounce(state, pending, job.debounce, now)
			if (d.kind === 'replace') {
				await run('replacePending', [d.jobId, job.input, d.runAt, now])
				await run('setFlow', [dKey, JSON.stringify(d.state), null])
				return { status: 'debounced', id: d.jobId }
			}
			runAt = d.runAt
			writes.push([dKey, d.trailing ? { ...d.state, jobId: job.id } : d.state])
		}
		if (job.throttle && tKey) {
			const t = admitThrottle(
				(states.get(tKey) as ThrottleState | undefined) ?? null,
				job.throttle,
				now,
				runAt,
			)
			if (!t.ok)
				return { status: 'throttled', id: (states.get(`${tKey}:last`) as string | undefined) ?? null }
			runAt = t.runAt
			writes.push([tKey, t.state], [`${tKey}:last`, job.id])
		}
		const [r] = await run<{ status: EnqueueResult['status']; id: string }>('enqueueKeyed', [
			JSON.stringify([toKeyedRecord({ ...job, runAt })]),
			now,
		])
		if (r!.status !== 'created') return { status: r!.status, id: r!.id } as EnqueueResult
		const c = job.concurrency
		if (c) await run('setConcurrency', [job.id, c.key, c.limit, c.windowMs, c.rolling])
		for (const [key, state] of writes) await run('setFlow', [key, JSON.stringify(state), null])
		return { status: 'created', id: job.id }
	}

	/** Runs `fn` in a transaction on one connection of the pool. */
	private async transaction<T>(fn: (run: Runner) => Promise<T>): Promise<T> {
		const pool = this.pool
		if (!pool) throw new StorageUnavailableError(`${this.description} is not open.`)
		let client: pg.PoolClient
		try {
			client = await checkout(pool)
		} catch (err) {
			throw wrap(err, this.description)
		}
		let broken = false
		const run: Runner = async <R>(name: QueryName, values: unknown[]) =>
			(await client.query({ name: this.names[name], text: this.sql[name], values, types: TYPES })).rows as R[]
		try {
			await client.query('BEGIN')
			const result = await fn(run)
			await client.query('COMMIT')
			return result
		} catch (err) {
			broken = true
			await client.query('ROLLBACK').catch(() => {})
			throw wrap(err, this.description)
		} finally {
			checkin(client, broken)
		}
	}

	/**
	 * Claims due jobs with a concurrency key, in a transaction: candidates are locked, then their
	 * keys (advisory locks, in sorted order), then running jobs and windows are counted as committed
	 * by every process, and only what fits is taken.
	 */
	private claimKeyed(
		names: readonly string[],
		owner: string,
		token: string,
		expiresAt: number,
		now: number,
		limit: number,
		tx?: Runner,
	): Promise<ClaimRecord[]> {
		const inTx = async (run: Runner) => {
			const candidates = await run<KeyedCandidate>('keyedCandidates', [names, now, limit])
			if (candidates.length === 0) return []
			const keys = [...new Set(candidates.map((c) => c.concurrency_key))]
			await run('lockKeys', [keys.map((k) => `c:${k}`)])
			const running = new Map<string, number>()
			const counted = candidates.filter((c) => c.concurrency_window === null).map((c) => c.concurrency_key)
			if (counted.length > 0) {
				for (const r of await run<{ key: string; n: number }>('activeByKey', [[...new Set(counted)]])) {
					running.set(r.key, r.n)
				}
			}
			const windowed = candidates
				.filter((c) => c.concurrency_window !== null)
				.map((c) => `c:${c.concurrency_key}`)
			const windows = new Map<string, { state: WindowState | null; until: number | null; changed: boolean }>()
			if (windowed.length > 0) {
				const found = new Map(
					(await run<{ key: string; state: WindowState }>('getFlows', [[...new Set(windowed)]])).map((r) => [
						r.key,
						r.state,
					]),
				)
				for (const k of windowed) windows.set(k, { state: found.get(k) ?? null, until: null, changed: false })
			}
			const chosen: number[] = []
			for (const c of candidates) {
				if (c.concurrency_window === null) {
					const n = running.get(c.concurrency_key) ?? 0
					if (n >= c.concurrency_limit) continue
					running.set(c.concurrency_key, n + 1)
					chosen.push(c.seq)
					continue
				}
				const spec: ConcurrencySpec = {
					key: c.concurrency_key,
					limit: c.concurrency_limit,
					windowMs: c.concurrency_window,
					rolling: c.concurrency_rolling === true,
				}
				const w = windows.get(`c:${spec.key}`)!
				const r = admitWindow(w.state, spec, now)
				if (!r.ok) continue
				w.state = r.state
				w.until = r.until
				w.changed = true
				chosen.push(c.seq)
			}
			for (const [key, w] of windows) {
				if (w.changed) await run('setFlow', [key, JSON.stringify(w.state), w.until])
			}
			if (chosen.length === 0) return []
			return run<ClaimRecord>('claimSeqs', [chosen, owner, token, expiresAt, now])
		}
		return tx ? inTx(tx) : this.transaction(inTx)
	}

	async claim(params: {
		names: readonly string[]
		owner: string
		limit: number
		leaseMs: number
		now: number
	}): Promise<ClaimedJob[]> {
		return this.claimWith(params)
	}

	/** Claims on the pool, or inside the transaction of `tx` (settleAndClaim). */
	private async claimWith(
		params: {
			readonly names: readonly string[]
			readonly owner: string
			readonly limit: number
			readonly leaseMs: number
			readonly now: number
		},
		tx?: Runner,
	): Promise<ClaimedJob[]> {
		if (params.names.length === 0 || params.limit <= 0) return []
		const run = tx ?? this.runner
		const token = createLeaseToken()
		const expiresAt = params.now + params.leaseMs
		const found = await run<ClaimRecord & { keyed: boolean }>('claim', [
			params.names,
			params.owner,
			token,
			expiresAt,
			params.now,
			params.limit,
			tx === undefined,
		])
		// Jobs with concurrency keys take the keyed path when the batch has room left: the claim
		// says whether any is due with a last row of its own.
		const keyedDue = found.some((r) => r.keyed)
		const rows: ClaimRecord[] = keyedDue ? found.filter((r) => !r.keyed) : found
		if (keyedDue && rows.length < params.limit) {
			rows.push(
				...(await this.claimKeyed(
					params.names,
					params.owner,
					token,
					expiresAt,
					params.now,
					params.limit - rows.length,
					tx,
				)),
			)
		}
		// RETURNING does not keep the subquery's order: restore claim order.
		rows.sort((a, b) => a.priority - b.priority || a.run_at - b.run_at || a.seq - b.seq)
		const lease = { owner: params.owner, token, expiresAt }
		return rows.map((r) => toClaimed(r, lease))
	}

	async claimOrEnqueue(params: {
		job: NewJob & { dedupeKey: string }
		owner: string
		leaseMs: number
		now: number
	}): Promise<ClaimOrEnqueueResult> {
		const { job, now } = params
		const lease = { owner: params.owner, token: createLeaseToken(), expiresAt: now + params.leaseMs }
		const pool = this.pool
		if (!pool) throw new StorageUnavailableError(`${this.description} is not open.`)
		let client: pg.PoolClient
		try {
			client = await checkout(pool)
		} catch (err) {
			throw wrap(err, this.description)
		}
		let broken = false
		const run = async <R>(name: QueryName, values: unknown[]) =>
			(await client.query({ name: this.names[name], text: this.sql[name], values, types: TYPES })).rows as R[]
		try {
			await client.query('BEGIN')
			// The same lock as enqueue_one's for this dedupe key: decisions about the key are serialized.
			await client.query("SELECT pg_advisory_xact_lock(hashtextextended('spool:d:' || $1 || ':' || $2, 0))", [
				job.name,
				job.dedupeKey,
			])
			const holders = await run<{ id: string; status: JobStatus }>('dedupeHolders', [job.name, job.dedupeKey])
			const pending = holders.find((h) => h.status === 'pending')
			const active = holders.find((h) => h.status === 'active')
			let result: ClaimOrEnqueueResult
			if (active) {
				if (pending) result = { status: 'deduped', id: pending.id }
				else if (job.dedupeScope === 'pending+active') result = { status: 'deduped', id: active.id }
				else {
					const [r] = await run<{ status: string; id: string }>('enqueueKeyed', [
						JSON.stringify([toKeyedRecord({ ...job, dedupeScope: 'pending' })]),
						now,
					])
					result =
						r!.status === 'created' ? { status: 'enqueued', id: job.id } : { status: 'deduped', id: r!.id }
				}
			} else if (pending) {
				const [row] = await run<ClaimRecord>('claimById', [
					pending.id,
					lease.owner,
					lease.token,
					lease.expiresAt,
					now,
				])
				if (!row) throw new StorageUnavailableError('A claimed job vanished inside its transaction.')
				result = { status: 'claimed', job: toClaimed(row, lease) }
			} else {
				const [r] = await run<{ status: string; id: string }>('enqueueClaimed', [
					job.id,
					job.name,
					job.input,
					job.priority,
					job.runAt,
					job.maxAttempts,
					job.dedupeKey,
					job.dedupeScope,
					job.idempotencyKey,
					job.parentId,
					job.backoff,
					now,
					lease.owner,
					lease.token,
					lease.expiresAt,
				])
				if (r!.status !== 'created') result = { status: 'deduped', id: r!.id }
				else {
					const [row] = await run<JobRecord>('getJob', [job.id])
					result = { status: 'claimed', job: toClaimed(row!, lease) }
				}
			}
			await client.query('COMMIT')
			return result
		} catch (err) {
			broken = true
			await client.query('ROLLBACK').catch(() => {})
			throw wrap(err, this.description)
		} finally {
			checkin(client, broken)
		}
	}

	async heartbeat(params: {
		leases: readonly { id: string; token: string }[]
		leaseMs: number
		now: number
	}): Promise<string[]> {
		if (params.leases.length === 0) return []
		const rows = await this.q<{ id: string }>('heartbeat', [
			params.leases.map((l) => l.id),
			params.leases.map((l) => l.token),
			params.now + params.leaseMs,
			params.now,
		])
		const held = new Set(rows.map((r) => r.id))
		return params.leases.filter((l) => !held.has(l.id)).map((l) => l.id)
	}

	async settle(params: {
		outcomes: readonly Outcome[]
		logs?: ReadonlyMap<string, readonly string[]>
		now: number
	}): Promise<SettleResult[]> {
		return this.settleWith(params)
	}

	/**
	 * `settle` then `claim` in one transaction (one commit): the claim sees what the settle changed
	 * (a retry due now, a freed dedupe key). The worker's completer uses it to refill the slots a
	 * batch of outcomes frees.
	 */
	async settleAndClaim(params: {
		outcomes: readonly Outcome[]
		logs?: ReadonlyMap<string, readonly string[]>
		now: number
		claim: ClaimRequest
	}): Promise<SettleAndClaimResult> {
		if (params.claim.limit <= 0 || params.claim.names.length === 0) {
			return { settled: await this.settleWith(params), claimed: [] }
		}
		return this.transaction(async (run) => ({
			settled: await this.settleWith(params, run),
			claimed: await this.claimWith({ ...params.claim, now: params.now }, run),
		}))
	}

	/** Settles on the pool, or inside the transaction of `tx`. */
	private async settleWith(
		params: {
			readonly outcomes: readonly Outcome[]
			readonly logs?: ReadonlyMap<string, readonly string[]>
			readonly now: number
		},
		tx?: Runner,
	): Promise<SettleResult[]> {
		const { now, outcomes } = params
		const run = tx ?? this.runner
		if (params.logs && params.logs.size > 0) {
			await run('appendLogs', [
				JSON.stringify([...params.logs].map(([id, lines]) => ({ id, lines }))),
				this.maxLogLines,
			])
		}
		if (outcomes.length === 0) return []
		const applied = new Set<string>()
		// A parent suspending in the same batch as its child finishing must be waiting before the
		// child's completion looks for it: suspensions go first, in a statement of their own.
		const suspended = outcomes.filter((o) => o.kind === 'suspended')
		const rest = suspended.length > 0 ? outcomes.filter((o) => o.kind !== 'suspended') : outcomes
		const withFollowUps = rest.filter((o) => o.kind === 'completed' && (o.followUps?.length ?? 0) > 0)
		const plain = withFollowUps.length > 0 ? rest.filter((o) => !withFollowUps.includes(o)) : rest
		// Plain completions (the bulk of a busy worker's outcomes) take a statement of their own.
		const simple: Outcome[] = []
		const general: Outcome[] = []
		for (const o of plain) (isSimpleCompletion(o) ? simple : general).push(o)
		for (const batch of [suspended, general]) {
			if (batch.length === 0) continue
			const rows = await run<{ id: string }>('settle', [JSON.stringify(batch.map(toOutcomeRecord)), now])
			for (const r of rows) applied.add(r.id)
		}
		if (simple.length > 0) {
			const rows = await run<{ id: string }>('complete', completeValues(simple, now))
			for (const r of rows) applied.add(r.id)
		}
		// Completions that start other jobs (triggers): the completion and the inserts commit together.
		const withInserts = async (o: Outcome, r: Runner) => {
			if (o.kind !== 'completed') return
			const rows = await r<{ id: string }>('settle', [JSON.stringify([toOutcomeRecord(o)]), now])
			if (rows.length === 0) return
			applied.add(o.id)
			await this.enqueueWith(r, o.followUps ?? [], now)
		}
		for (const o of withFollowUps) {
			if (tx) await withInserts(o, tx)
			else await this.transaction((r) => withInserts(o, r))
		}
		return outcomes.map((o) => ({ id: o.id, ok: applied.has(o.id) }))
	}

	/** Backend process ids of this pool's connections running an enqueue of ours, and how many. */
	private readonly ownInserts = new Map<number, number>()

	/**
	 * Runs an enqueue statement outside any transaction on a connection of the pool, noting the
	 * connection's backend while it runs: the NOTIFY it sends at commit is this process's own
	 * (see startListener). Once the statement's reply is read the mark goes; a notification read
	 * later wakes the worker once more, harmlessly (the enqueue's hooks have run by then).
	 */
	private readonly enqueueRunner: Runner = async <R>(name: QueryName, values: unknown[]) => {
		const pool = this.pool
		if (!pool) {
			throw new StorageUnavailableError(`${this.description} is not open (closed, or open() not awaited).`)
		}
		let client: pg.PoolClient
		try {
			client = await checkout(pool)
		} catch (err) {
			throw wrap(err, this.description)
		}
		const pid = (client as { processID?: number | null }).processID ?? null
		if (pid !== null) this.ownInserts.set(pid, (this.ownInserts.get(pid) ?? 0) + 1)
		let broken = false
		try {
			return (await client.query({ name: this.names[name], text: this.sql[name], values, types: TYPES }))
				.rows as R[]
		} catch (err) {
			broken = isConnectionError(err)
			throw wrap(err, this.description)
		} finally {
			if (pid !== null) {
				const n = (this.ownInserts.get(pid) ?? 1) - 1
				if (n > 0) this.ownInserts.set(pid, n)
				else this.ownInserts.delete(pid)
			}
			checkin(client, broken)
		}
	}

	/** Named queries on the pool, as a Runner. */
	private readonly runner: Runner = (name, values) => this.q(name, values)

	async reap(params: { now: number; limit: number }): Promise<{
		requeued: string[]
		dead: string[]
		woken: string[]
	}> {
		const rows = await this.q<{ id: string; what: 'requeued' | 'dead' | 'woken' }>('reap', [
			params.now,
			params.limit,
		])
		const out = { requeued: [] as string[], dead: [] as string[], woken: [] as string[] }
		for (const r of rows) out[r.what].push(r.id)
		return out
	}

	async wake(params: { ids: readonly string[]; now: number }): Promise<string[]> {
		if (params.ids.length === 0) return []
		const rows = await this.q<{ id: string }>('wake', [params.ids, params.now])
		const woken = new Set(rows.map((r) => r.id))
		return params.ids.filter((id) => woken.has(id))
	}

	async cancel(params: { id: string; now: number }): Promise<CancelResult> {
		const [row] = await this.q<{ status: JobStatus }>('cancel', [params.id, params.now])
		if (!row) return { status: 'not-found' }
		if (row.status === 'completed' || row.status === 'dead' || row.status === 'cancelled') {
			return { status: 'finished', current: row.status }
		}
		return { status: 'cancelled', previous: row.status }
	}

	async replay(params: ({ ids: readonly string[] } | { name: string }) & { now: number }): Promise<string[]> {
		const rows =
			'ids' in params
				? await this.q<{ id: string; seq: number }>('replayIds', [params.ids, params.now])
				: await this.q<{ id: string; seq: number }>('replayName', [params.name, params.now])
		return rows.sort((a, b) => a.seq - b.seq).map((r) => r.id)
	}

	async prune(params: {
		statuses: readonly ('completed' | 'dead' | 'cancelled')[]
		before: number
		limit: number
		name?: string
	}): Promise<number> {
		if (params.statuses.length === 0 || params.limit <= 0) return 0
		const pool = this.pool
		if (!pool) throw new StorageUnavailableError(`${this.description} is not open.`)
		try {
			const r = await pool.query({
				name: this.names.prune,
				text: this.sql.prune,
				values: [params.statuses, params.before, params.limit, params.name ?? null],
			})
			return r.rowCount ?? 0
		} catch (err) {
			throw wrap(err, this.description)
		}
	}

	async setPaused(params: { name: string; paused: boolean; now: number }): Promise<void> {
		if (params.paused) await this.q('pause', [params.name, params.now])
		else await this.q('resume', [params.name])
	}

	async listPaused(): Promise<string[]> {
		return (await this.q<{ name: string }>('listPaused', [])).map((r) => r.name)
	}

	async lastTick(params: { key: string }): Promise<number | null> {
		const [row] = await this.q<{ state: number }>('getFlows', [[`tick:${params.key}`]])
		return row ? row.state : null
	}

	async getJob(params: { id: string }): Promise<JobRow | null> {
		const [row] = await this.q<JobRecord>('getJob', [params.id])
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
		const rows = await this.q<JobRecord>('listJobs', [
			below,
			params.name ?? null,
			params.status ?? null,
			params.parentId ?? null,
			params.limit + 1,
		])
		const more = rows.length > params.limit
		const page = more ? rows.slice(0, params.limit) : rows
		return { jobs: page.map(toJobRow), nextCursor: more ? String(page[page.length - 1]!.seq) : null }
	}

	async getStats(params: { name?: string }): Promise<QueueStats> {
		const rows = await this.q<{ name: string; status: JobStatus; n: number }>('stats', [params.name ?? null])
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
		const rows = await this.q<StepRecord>('getSteps', [params.jobId])
		return rows.map((r) => ({
			jobId: r.job_id,
			stepId: r.step_id,
			name: r.name,
			state: r.state,
			index: r.idx,
			output: r.output as JsonText | null,
			error: r.error,
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
		const [row] = await this.q<{ held: number }>('saveStep', [
			params.jobId,
			params.token,
			params.stepId,
			params.name,
			params.state,
			params.output,
			params.error === null ? null : JSON.stringify(params.error),
			params.now,
			params.index ?? null,
		])
		return (row?.held ?? 0) > 0
	}

	async addWaiter(params: {
		waiter: { id: string; jobId: string; topic: string; match: JsonText | null }
		token: string
		now: number
	}): Promise<boolean> {
		const w = params.waiter
		const [row] = await this.q<{ held: number }>('addWaiter', [
			w.id,
			w.jobId,
			params.token,
			w.topic,
			w.match,
			params.now,
		])
		return (row?.held ?? 0) > 0
	}

	async getWaiter(params: { id: string }): Promise<WaiterRow | null> {
		const [r] = await this.q<{
			id: string
			job_id: string
			topic: string
			match: string | null
			events: string
			created_at: number
		}>('getWaiter', [params.id])
		if (!r) return null
		return {
			id: r.id,
			jobId: r.job_id,
			topic: r.topic,
			// jsonb text is normalized (spaces after ':' and ','): hand back compact JSON.
			match: r.match === null ? null : (JSON.stringify(JSON.parse(r.match)) as JsonText),
			events: (JSON.parse(r.events) as unknown[]).map((e) => JSON.stringify(e) as JsonText),
			createdAt: r.created_at,
		}
	}

	async trimWaiter(params: { id: string; drop: number | 'all' }): Promise<void> {
		if (params.drop === 'all') await this.q('deleteWaiter', [params.id])
		else await this.q('trimWaiter', [params.id, params.drop])
	}

	async publish(params: { event: PublishedEvent; now: number }): Promise<string[]> {
		const { event } = params
		const rows = await this.q<{ id: string }>('publish', [
			event.topic,
			event.subject,
			event.payload,
			params.now,
		])
		return rows.map((r) => r.id)
	}
}

/** Whether enqueuing these jobs needs a transaction of its own (flow options decided in JS). */
function needsTransaction(jobs: readonly NewJob[]): boolean {
	return jobs.some(
		(j) =>
			Boolean(j.throttle || j.debounce || j.tick) ||
			(j.concurrency != null && (j.idempotencyKey !== null || j.dedupeKey !== null)),
	)
}

/** The most jobs of one enqueue call that joins a group commit; larger calls go on their own. */
const GROUP_COMMIT_MAX = 100

/** Whether any of the jobs has an idempotency or dedupe key. */
function hasKeys(jobs: readonly NewJob[]): boolean {
	return jobs.some((j) => j.idempotencyKey !== null || j.dedupeKey !== null)
}

/** Whether no two of the jobs share an id. */
function distinctIds(jobs: readonly NewJob[]): boolean {
	return jobs.length === 1 || new Set(jobs.map((j) => j.id)).size === jobs.length
}

/** SQLSTATE unique_violation. */
const UNIQUE_VIOLATION = '23505'

/**
 * The parameters of insertMany and insertManyFresh: the jobs' fields as parallel arrays, written
 * here as array literals (one string each, built with a join: pg's own array encoding escapes
 * element by element and was a fifth of a bulk enqueue's JavaScript time), and the inputs as one
 * JSON array of the jobs' JSON texts joined, which needs no escaping at all (the server splits it
 * with json_array_elements, keeping each element's text as written). A column that is null in
 * every job goes as null (unnest pads it with nulls).
 */
function insertValues(jobs: readonly NewJob[], now: number | readonly number[]): unknown[] {
	const n = jobs.length
	const ids = new Array<string>(n)
	const names = new Array<string>(n)
	const inputs = new Array<string>(n)
	const priorities = new Array<number>(n)
	const runAts = new Array<number>(n)
	const maxAttempts = new Array<number>(n)
	let anyParent = false
	let anyBackoff = false
	let anyConcurrency = false
	let lastName = ''
	let lastQuoted = ''
	for (let i = 0; i < n; i++) {
		const j = jobs[i]!
		ids[i] = quote(j.id)
		// A batch is mostly one job name: quote it once.
		if (j.name !== lastName || i === 0) {
			lastName = j.name
			lastQuoted = quote(j.name)
		}
		names[i] = lastQuoted
		inputs[i] = j.input
		priorities[i] = j.priority
		runAts[i] = j.runAt
		maxAttempts[i] = j.maxAttempts
		anyParent ||= j.parentId !== null
		anyBackoff ||= j.backoff !== null
		anyConcurrency ||= j.concurrency != null
	}
	const column = <T>(get: (j: NewJob) => T | null | undefined, put: (v: T) => string): string => {
		const parts = new Array<string>(n)
		for (let i = 0; i < n; i++) {
			const v = get(jobs[i]!)
			parts[i] = v === null || v === undefined ? 'NULL' : put(v)
		}
		return `{${parts.join(',')}}`
	}
	return [
		`{${ids.join(',')}}`,
		`{${names.join(',')}}`,
		`[${inputs.join(',')}]`,
		`{${priorities.join(',')}}`,
		`{${runAts.join(',')}}`,
		`{${maxAttempts.join(',')}}`,
		anyParent ? column((j) => j.parentId, quote) : null,
		anyBackoff ? column((j) => j.backoff, quote) : null,
		anyConcurrency ? column((j) => j.concurrency?.key, quote) : null,
		anyConcurrency ? column((j) => j.concurrency?.limit, String) : null,
		anyConcurrency ? column((j) => j.concurrency?.windowMs, String) : null,
		anyConcurrency
			? column(
					(j) => j.concurrency?.rolling,
					(v) => (v ? 't' : 'f'),
				)
			: null,
		typeof now === 'number' ? now : now[0],
		typeof now === 'number' ? null : `{${now.join(',')}}`,
	]
}

const ARRAY_SPECIAL = /[\\"]/
const ARRAY_SPECIAL_ALL = /[\\"]/g

/** A string as an element of a PostgreSQL array literal: double-quoted, `\\` and `"` escaped. */
function quote(value: string): string {
	return `"${ARRAY_SPECIAL.test(value) ? value.replace(ARRAY_SPECIAL_ALL, '\\$&') : value}"`
}

/**
 * A completion that publishes no event but its job's own completion event: the `complete`
 * statement (follow-up jobs were set apart before).
 */
function isSimpleCompletion(o: Outcome): boolean {
	return o.kind === 'completed' && (o.event === undefined || o.event.completion === true)
}

/** The parameters of `complete`: ids, tokens and outputs as array literals built with one join each. */
function completeValues(outcomes: readonly Outcome[], now: number): unknown[] {
	const n = outcomes.length
	const ids = new Array<string>(n)
	const tokens = new Array<string>(n)
	const outputs = new Array<string>(n)
	const evented = new Array<string>(n)
	const removes = new Array<string>(n)
	let lastToken = ''
	let lastQuoted = ''
	for (let i = 0; i < n; i++) {
		const o = outcomes[i]!
		ids[i] = quote(o.id)
		// The jobs of one claim share a token: quote it once.
		if (o.token !== lastToken || i === 0) {
			lastToken = o.token
			lastQuoted = quote(o.token)
		}
		tokens[i] = lastQuoted
		outputs[i] = o.kind === 'completed' ? quote(o.output) : 'NULL'
		evented[i] = o.kind === 'completed' && o.event !== undefined ? 't' : 'f'
		removes[i] = o.kind === 'completed' && o.remove === true ? 't' : 'f'
	}
	return [
		`{${ids.join(',')}}`,
		`{${tokens.join(',')}}`,
		`{${outputs.join(',')}}`,
		now,
		`{${evented.join(',')}}`,
		`{${removes.join(',')}}`,
	]
}

function toKeyedRecord(j: NewJob) {
	return {
		id: j.id,
		name: j.name,
		input: j.input,
		priority: j.priority,
		run_at: j.runAt,
		max_attempts: j.maxAttempts,
		dedupe_key: j.dedupeKey,
		dedupe_scope: j.dedupeScope,
		idempotency_key: j.idempotencyKey,
		parent_id: j.parentId,
		backoff: j.backoff,
	}
}

function toOutcomeRecord(o: Outcome) {
	switch (o.kind) {
		case 'completed':
			return {
				id: o.id,
				token: o.token,
				kind: o.kind,
				output: o.output,
				remove: o.remove === true,
				event_topic: o.event?.topic ?? null,
				// Spliced as JSON values, not strings: json_to_recordset reads them as jsonb.
				event_subject: o.event ? JSON.parse(o.event.subject) : null,
				event_payload: o.event ? JSON.parse(o.event.payload) : null,
			}
		case 'retry':
			return { id: o.id, token: o.token, kind: o.kind, error: o.error, run_at: o.runAt, remove: false }
		case 'dead':
			return { id: o.id, token: o.token, kind: o.kind, error: o.error, remove: false }
		case 'suspended':
			return {
				id: o.id,
				token: o.token,
				kind: o.kind,
				run_at: o.wakeAt ?? NEVER,
				remove: false,
				children: o.children ?? [],
				waiters: o.waiters ?? [],
			}
		case 'released':
			return { id: o.id, token: o.token, kind: o.kind, remove: false }
	}
}

/** SQLSTATE classes and driver errors that mean "the server cannot be reached right now". */
function isConnectionError(err: unknown): boolean {
	const code = (err as { code?: unknown }).code
	if (typeof code === 'string') {
		if (code.startsWith('08')) return true // connection exception
		if (code === '57P01' || code === '57P02' || code === '57P03') return true // shutdown, crash, starting
		if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN'].includes(code))
			return true
	}
	const message = (err as Error)?.message ?? ''
	return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test(
		message,
	)
}

function wrap(err: unknown, where: string): Error {
	if (err instanceof SpoolError) return err
	if (isConnectionError(err)) {
		return new StorageUnavailableError(
			`${where} cannot be reached (${(err as Error).message}); the operation will be retried.`,
			{ cause: err },
		)
	}
	return err instanceof Error ? err : new Error(String(err))
}

/** A connection string without its password, for logs. */
function redact(connectionString: string): string {
	try {
		const url = new URL(connectionString)
		if (url.password) url.password = '***'
		return `${url.host}${url.pathname}`
	} catch {
		return 'postgres'
	}
}

function toClaimed(r: ClaimRecord, lease: { owner: string; token: string; expiresAt: number }): ClaimedJob {
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
		lease,
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
		errors: r.errors,
		logs: r.logs,
		parentId: r.parent_id,
		backoff: r.backoff as JsonText | null,
		createdAt: r.created_at,
		updatedAt: r.updated_at,
		startedAt: r.started_at,
		finishedAt: r.finished_at,
	}
}
