/**
 * The row the memory storage (and the file log built on it) keeps per job, laid out to be small:
 * a million pending jobs must fit in a few hundred MB. Internal, not part of the public API.
 *
 * - Fields every job uses are plain fields. Those only some jobs use live in side objects made
 *   when first set and read through accessors (so code reads `row.leaseOwner` as before): the
 *   enqueue options (priority, dedupe, idempotency, parent, backoff, concurrency: most jobs have
 *   none) and the run (attempt, lease, last change time, started/finished times, output, errors,
 *   logs, steps: jobs that ran or changed). The row points at one of them: the options, or the
 *   run, which then holds the options. `status`, `pendingEpoch` and the queue flags share one
 *   small integer. A pending job that never changed is one object of 10 fields (104 bytes).
 * - `errors` and `logs` start as one shared, frozen empty array: add to them with `addError` and
 *   `addLogs`, never by pushing (a push on the shared array throws).
 * - Times are kept in fields V8 treats as tagged, not as unboxed doubles (see `warm` below), so a
 *   row's `createdAt`, `updatedAt` and `runAt` share one number object when equal instead of
 *   holding one 16-byte box each.
 */
import type { ConcurrencySpec } from '../flow/limits.js'
import type { JsonText } from '../json.js'
import type { AttemptError, DedupeScope, JobStatus, StepRow } from './contract.js'

const NONE = Object.freeze([]) as unknown as never[]

/** The statuses by their code in a row's `e` (pending is 0: a new row's `e` is 0). */
const STATUS: readonly JobStatus[] = ['pending', 'active', 'waiting', 'completed', 'dead', 'cancelled']

function statusCode(s: JobStatus): number {
	switch (s) {
		case 'pending':
			return 0
		case 'active':
			return 1
		case 'waiting':
			return 2
		case 'completed':
			return 3
		case 'dead':
			return 4
		default:
			return 5
	}
}

class Options {
	constructor(
		public dedupeKey: string | null,
		public dedupeScope: DedupeScope | null,
		public idempotencyKey: string | null,
		public parentId: string | null,
		public backoff: JsonText | null,
		public concurrency: ConcurrencySpec | null,
		public priority: number,
	) {}
	/** Tells the options from a run (a field read: cheaper than `instanceof` on every access). */
	readonly isRun = false
}

class Run {
	/** The enqueue options, if any (a row with a run keeps them here). */
	readonly isRun = true
	o: Options | null = null
	attempt = 0
	updatedAt = 0
	leaseOwner: string | null = null
	leaseToken: string | null = null
	leaseExpiresAt = 0
	startedAt: number | null = null
	finishedAt: number | null = null
	output: JsonText | null = null
	errors: AttemptError[] = NONE
	logs: string[] = NONE
	steps: Map<string, StepRow> | null = null
}

/** A Run, as an object literal: V8 pretenures literals that live long (a class instance is not). */
function newRun(o: Options | null, updatedAt: number): Run {
	return {
		isRun: true,
		o,
		attempt: 0,
		updatedAt,
		leaseOwner: null,
		leaseToken: null,
		leaseExpiresAt: 0,
		startedAt: null,
		finishedAt: null,
		output: null,
		errors: NONE,
		logs: NONE,
		steps: null,
	}
}

/** What a row is made from: every field of a job, as `Row` exposes them. */
export interface RowInit {
	id: string
	name: string
	input: JsonText
	status: JobStatus
	priority: number
	runAt: number
	attempt: number
	maxAttempts: number
	leaseOwner: string | null
	leaseToken: string | null
	leaseExpiresAt: number
	dedupeKey: string | null
	dedupeScope: DedupeScope | null
	idempotencyKey: string | null
	output: JsonText | null
	errors: AttemptError[]
	logs: string[]
	parentId: string | null
	backoff: JsonText | null
	concurrency: ConcurrencySpec | null
	createdAt: number
	updatedAt: number
	startedAt: number | null
	finishedAt: number | null
	seq: number
	pendingEpoch: number
	steps: Map<string, StepRow> | null
}

/** A job as the memory storage holds it. */
export class Row {
	id: string
	name: string
	input: JsonText
	runAt: number
	maxAttempts: number
	createdAt: number
	seq: number
	/**
	 * Three small numbers in one field (a Smi): `pendingEpoch` times 32, plus the status's code
	 * times 4, plus 1 while the row is its own entry in a claim queue (see `queueEntry`), plus 2
	 * more while that entry was queued under the current `pendingEpoch`. (`&` reads the low bits
	 * right even past 2^31, where the field becomes a boxed number.)
	 */
	private e: number
	/** The `runAt` it was queued under (its queue key: `runAt` may change while it waits). */
	queuedAt: number
	/** The side object: null, the enqueue options, or the run (which then holds the options). */
	private x: Options | Run | null = null

	/** A pending job as enqueued (`now` is its creation time). */
	constructor(
		id: string,
		name: string,
		input: JsonText,
		priority: number,
		runAt: number,
		maxAttempts: number,
		now: number,
		seq: number,
	) {
		this.id = id
		this.name = name
		this.input = input
		// The same number object as `now` when equal: one box for the three times.
		this.runAt = runAt === now ? now : runAt
		this.maxAttempts = maxAttempts
		this.createdAt = now
		this.seq = seq
		this.e = 0
		this.queuedAt = 0
		if (priority !== 0) this.x = new Options(null, null, null, null, null, null, priority)
	}

	/** Bumped whenever the row enters pending, so stale heap entries can be told apart. */
	get pendingEpoch(): number {
		return Math.floor(this.e / 32)
	}
	/** A new epoch: the row's own queue entry, if any, is stale from now on. */
	set pendingEpoch(v: number) {
		this.e = v * 32 + (this.e & 29)
	}

	/** The job's state. */
	get status(): JobStatus {
		return STATUS[(this.e >> 2) & 7]!
	}
	set status(v: JobStatus) {
		const e = this.e
		this.e = e - (e & 28) + statusCode(v) * 4
	}

	/**
	 * While the row is its own entry in a claim queue: the `pendingEpoch` it was queued under (-2
	 * for an older one, which is all a reader needs to know); -1 when it is in no queue.
	 */
	get queuedEpoch(): number {
		const f = this.e & 3
		return f === 0 ? -1 : f === 3 ? this.pendingEpoch : -2
	}
	/** Set to -1 (out of its queue) or to `pendingEpoch` (queued under it). */
	set queuedEpoch(v: number) {
		const base = this.e - (this.e & 3)
		this.e = v === -1 ? base : base + 3
	}

	/** The priority (0 unless set, kept with the enqueue options). */
	get priority(): number {
		const o = this.o
		return o === null ? 0 : o.priority
	}

	/** The attempt number: 0 until the job is first claimed (kept with the run). */
	get attempt(): number {
		const r = this.r
		return r === null ? 0 : r.attempt
	}
	set attempt(v: number) {
		if (this.r !== null || v !== 0) this.run().attempt = v
	}

	/** The row, as its own queue entry. */
	get row(): Row {
		return this
	}

	/** A row with every field given (a snapshot). */
	static from(f: RowInit): Row {
		const row = newRow(f.id, f.name, f.input, f.priority, f.runAt, f.maxAttempts, f.createdAt, f.seq)
		row.status = f.status
		if (f.attempt !== 0) row.attempt = f.attempt
		row.updatedAt = f.updatedAt
		row.pendingEpoch = f.pendingEpoch
		row.setOptions(f.dedupeKey, f.dedupeScope, f.idempotencyKey, f.parentId, f.backoff, f.concurrency)
		if (f.leaseOwner !== null) row.leaseOwner = f.leaseOwner
		if (f.leaseToken !== null) row.leaseToken = f.leaseToken
		row.leaseExpiresAt = f.leaseExpiresAt
		if (f.startedAt !== null) row.startedAt = f.startedAt
		if (f.finishedAt !== null) row.finishedAt = f.finishedAt
		if (f.output !== null) row.output = f.output
		if (f.errors.length > 0) row.addError(...f.errors)
		if (f.logs.length > 0) row.addLogs(f.logs, Number.POSITIVE_INFINITY)
		if (f.steps !== null) row.steps = f.steps
		return row
	}

	/** Sets the enqueue options (kept only if one is set). */
	setOptions(
		dedupeKey: string | null,
		dedupeScope: DedupeScope | null,
		idempotencyKey: string | null,
		parentId: string | null,
		backoff: JsonText | null,
		concurrency: ConcurrencySpec | null,
	): void {
		const priority = this.priority
		const o =
			dedupeKey === null &&
			dedupeScope === null &&
			idempotencyKey === null &&
			parentId === null &&
			backoff === null &&
			concurrency === null &&
			priority === 0
				? null
				: new Options(dedupeKey, dedupeScope, idempotencyKey, parentId, backoff, concurrency, priority)
		const r = this.r
		if (r !== null) r.o = o
		else this.x = o
	}

	/** The run, made on first use. */
	private run(): Run {
		const x = this.x
		if (x?.isRun) return x
		const r = newRun(x, this.createdAt)
		this.x = r
		return r
	}

	/** The run, if made. */
	private get r(): Run | null {
		const x = this.x
		return x === null || !x.isRun ? null : x
	}

	/** The enqueue options, if any is set. */
	private get o(): Options | null {
		const x = this.x
		return x === null ? null : x.isRun ? x.o : x
	}

	/** Appends attempt errors. */
	addError(...errors: AttemptError[]): void {
		const run = this.run()
		if (run.errors === NONE) run.errors = []
		run.errors.push(...errors)
	}

	/** Appends log lines, keeping the last `max`. */
	addLogs(lines: readonly string[], max: number): void {
		if (lines.length === 0) return
		const run = this.run()
		if (run.logs === NONE) run.logs = []
		const target = run.logs
		target.push(...lines)
		if (target.length > max) target.splice(0, target.length - max)
	}

	/** The last change's time: `createdAt` until the job first changes. */
	get updatedAt(): number {
		const r = this.r
		return r === null ? this.createdAt : r.updatedAt
	}
	set updatedAt(v: number) {
		const r = this.r
		if (r !== null) r.updatedAt = v
		else if (v !== this.createdAt) this.run().updatedAt = v
	}

	get leaseOwner(): string | null {
		const r = this.r
		return r === null ? null : r.leaseOwner
	}
	/** Setting null drops the whole lease (owner, token and expiry go together). */
	set leaseOwner(v: string | null) {
		const r = this.r
		if (v !== null) this.run().leaseOwner = v
		else if (r !== null) {
			r.leaseOwner = null
			r.leaseToken = null
			r.leaseExpiresAt = 0
		}
	}
	get leaseToken(): string | null {
		const r = this.r
		return r === null ? null : r.leaseToken
	}
	set leaseToken(v: string | null) {
		if (this.r !== null || v !== null) this.run().leaseToken = v
	}
	get leaseExpiresAt(): number {
		const r = this.r
		return r === null ? 0 : r.leaseExpiresAt
	}
	set leaseExpiresAt(v: number) {
		if (this.r !== null || v !== 0) this.run().leaseExpiresAt = v
	}

	get dedupeKey(): string | null {
		const o = this.o
		return o === null ? null : o.dedupeKey
	}
	get dedupeScope(): DedupeScope | null {
		const o = this.o
		return o === null ? null : o.dedupeScope
	}
	get idempotencyKey(): string | null {
		const o = this.o
		return o === null ? null : o.idempotencyKey
	}
	get parentId(): string | null {
		const o = this.o
		return o === null ? null : o.parentId
	}
	get backoff(): JsonText | null {
		const o = this.o
		return o === null ? null : o.backoff
	}
	get concurrency(): ConcurrencySpec | null {
		const o = this.o
		return o === null ? null : o.concurrency
	}

	get startedAt(): number | null {
		const r = this.r
		return r === null ? null : r.startedAt
	}
	set startedAt(v: number | null) {
		if (this.r !== null || v !== null) this.run().startedAt = v
	}
	get finishedAt(): number | null {
		const r = this.r
		return r === null ? null : r.finishedAt
	}
	set finishedAt(v: number | null) {
		if (this.r !== null || v !== null) this.run().finishedAt = v
	}
	get output(): JsonText | null {
		const r = this.r
		return r === null ? null : r.output
	}
	set output(v: JsonText | null) {
		if (this.r !== null || v !== null) this.run().output = v
	}
	/** The attempt errors, oldest first: read only (add with `addError`). */
	get errors(): readonly AttemptError[] {
		const r = this.r
		return r === null ? NONE : r.errors
	}
	/** The log lines kept: read only (add with `addLogs`). */
	get logs(): readonly string[] {
		const r = this.r
		return r === null ? NONE : r.logs
	}
	get steps(): Map<string, StepRow> | null {
		const r = this.r
		return r === null ? null : r.steps
	}
	set steps(v: Map<string, StepRow> | null) {
		if (this.r !== null || v !== null) this.run().steps = v
	}
}

const PROTO = Row.prototype

/**
 * A pending job as enqueued (`now` is its creation time): `new Row(...)`, built as an object
 * literal on Row's prototype, which V8 allocates straight in the old generation once it sees such
 * objects live long (a million rows made by a replay are not copied through the young one).
 */
export function newRow(
	id: string,
	name: string,
	input: JsonText,
	priority: number,
	runAt: number,
	maxAttempts: number,
	now: number,
	seq: number,
): Row {
	return {
		__proto__: PROTO,
		id,
		name,
		input,
		runAt: runAt === now ? now : runAt,
		maxAttempts,
		createdAt: now,
		seq,
		e: 0,
		queuedAt: 0,
		x: priority === 0 ? null : new Options(null, null, null, null, null, null, priority),
	} as unknown as Row
}

/**
 * A pending job's place in its name's claim queue, with the keys it was queued under, when the
 * row cannot be its own entry (it is in a queue already, under older keys: a debounce).
 */
export class QueueEntry {
	readonly row: Row
	readonly queuedEpoch: number
	readonly priority: number
	readonly queuedAt: number
	readonly seq: number

	constructor(row: Row) {
		this.row = row
		this.queuedEpoch = row.pendingEpoch
		this.priority = row.priority
		this.queuedAt = row.runAt
		this.seq = row.seq
	}
}

/** An entry of a claim queue: a row (most of the time, saving an object per job) or a QueueEntry. */
export type Queued = Row | QueueEntry

/** The entry to queue `row` under, now that it entered pending: the row itself if it is in no queue. */
export function queueEntry(row: Row): Queued {
	if (row.queuedEpoch !== -1) return new QueueEntry(row)
	row.queuedEpoch = row.pendingEpoch
	row.queuedAt = row.runAt
	return row
}

/** Call with each entry taken out of a queue for good: a row is then in no queue. */
export function dequeued(e: Queued): void {
	if (e.row === e) (e as Row).queuedEpoch = -1
}

/**
 * V8 stores a field that has only ever held numbers as an unboxed double with its own 16-byte box
 * per object; a field that once held something else is tagged and points at the number it is
 * given, so equal times can share one. One throwaway row with nulls in its number fields, made
 * before any other, makes those fields tagged for every row.
 */
function warm(): void {
	const n = null as unknown as number
	newRow('', '', '' as JsonText, n, n, n, n, n)
	const row = new Row('', '', '' as JsonText, n, n, n, n, n)
	row.attempt = n
	row.maxAttempts = n
	const run = newRun(null, n)
	run.leaseExpiresAt = n
	new QueueEntry(row)
}
warm()
