/**
 * The file log's records: one per change the memory storage journals, and one per job in a
 * snapshot. Records name jobs by their insertion sequence number (a varint) instead of their id.
 *
 * Every record starts with its type byte. A lease is not logged beyond the claim: when the log is
 * opened again, the process that held it is gone, so every lease found is treated as expired.
 */
import type { ConcurrencySpec } from '../../flow/limits.js'
import type { JsonText } from '../../json.js'
import type {
	AttemptError,
	DedupeScope,
	JobStatus,
	Outcome,
	PublishedEvent,
	StepRow,
	StepState,
	WaiterRow,
} from '../contract.js'
import type { MemoryStorage } from '../memory.js'
import { Row } from '../row.js'
import type { Reader, Writer } from './codec.js'

/** Record types. */
export enum Rec {
	Create = 1,
	Claim = 2,
	Completed = 3,
	Retry = 4,
	Dead = 5,
	Suspended = 6,
	Released = 7,
	Reaped = 8,
	Woken = 9,
	Cancelled = 10,
	Replayed = 11,
	Removed = 12,
	Logged = 13,
	Step = 14,
	/** A flow state entry (throttle, debounce, window, tick, paused name) set or deleted. */
	Meta = 15,
	/** A pending job took a debounced trigger's input and runAt. */
	Debounced = 16,
	/** A waiter (job.waitFor / pipe.waitFor) registered, with the events it holds. */
	Waiter = 17,
	/** A waiter's oldest events, or the waiter, dropped. */
	WaiterTrim = 18,
	/** An event published to waiters (their jobs woken as the replay redoes it). */
	Published = 19,
	/** A step's call index (follows its Step or Row record). */
	StepIndex = 22,
	/** First record of a snapshot: the sequence counter and how many jobs follow. */
	Snapshot = 20,
	/** One whole job, in a snapshot. */
	Row = 21,
}

const STATUS: readonly JobStatus[] = ['pending', 'active', 'waiting', 'completed', 'dead', 'cancelled']
const STATUS_CODE: Record<JobStatus, number> = {
	pending: 0,
	active: 1,
	waiting: 2,
	completed: 3,
	dead: 4,
	cancelled: 5,
}
const STEP_STATE: readonly StepState[] = ['started', 'completed', 'failed']
const STEP_CODE: Record<StepState, number> = { started: 0, completed: 1, failed: 2 }

function scopeCode(s: DedupeScope | null): number {
	return s === null ? 0 : s === 'pending' ? 1 : 2
}
function scopeOf(c: number, r: Reader): DedupeScope | null {
	if (c === 0) return null
	if (c === 1) return 'pending'
	if (c === 2) return 'pending+active'
	return r.fail('bad dedupe scope')
}

function writeConcurrency(w: Writer, c: ConcurrencySpec | null): void {
	if (c === null) {
		w.u8(0)
		return
	}
	w.u8(c.rolling ? 2 : 1)
	w.str(c.key)
	w.num(c.limit)
	w.num(c.windowMs ?? -1)
}

function readConcurrency(r: Reader): ConcurrencySpec | null {
	const t = r.u8()
	if (t === 0) return null
	const key = r.str()
	const limit = r.num()
	const windowMs = r.num()
	return { key, limit, windowMs: windowMs === -1 ? null : windowMs, rolling: t === 2 }
}

function writeError(w: Writer, e: AttemptError): void {
	w.num(e.attempt)
	w.str(e.name)
	w.str(e.message)
	w.nstr(e.stack ?? null)
	w.nstr(e.code ?? null)
	w.num(e.at)
}

function readError(r: Reader): AttemptError {
	const attempt = r.num()
	const name = r.str()
	const message = r.str()
	const stack = r.nstr()
	const code = r.nstr()
	const at = r.num()
	const e: { -readonly [K in keyof AttemptError]: AttemptError[K] } = { attempt, name, message, at }
	if (stack !== null) e.stack = stack
	if (code !== null) e.code = code
	return e
}

/** Encodes the journal's calls as records. */
export const encode = {
	created(w: Writer, row: Row): void {
		w.u8(Rec.Create)
		w.uint(row.seq)
		w.str(row.id)
		w.str(row.name)
		w.str(row.input)
		w.num(row.priority)
		w.num(row.runAt)
		w.num(row.maxAttempts)
		w.nstr(row.dedupeKey)
		w.u8(scopeCode(row.dedupeScope))
		w.nstr(row.idempotencyKey)
		w.nstr(row.parentId)
		w.nstr(row.backoff)
		w.num(row.createdAt)
		if (row.status === 'active') {
			w.u8(1)
			w.str(row.leaseOwner!)
			w.str(row.leaseToken!)
			w.num(row.leaseExpiresAt)
		} else {
			w.u8(0)
		}
		writeConcurrency(w, row.concurrency)
	},
	meta(w: Writer, key: string, value: unknown): void {
		w.u8(Rec.Meta)
		w.str(key)
		w.nstr(value === null ? null : JSON.stringify(value))
	},
	debounced(w: Writer, row: Row, now: number): void {
		w.u8(Rec.Debounced)
		w.uint(row.seq)
		w.num(now)
		w.str(row.input)
		w.num(row.runAt)
	},
	claimed(w: Writer, rows: readonly Row[], now: number): void {
		const r0 = rows[0]!
		w.u8(Rec.Claim)
		w.num(now)
		w.str(r0.leaseOwner!)
		w.str(r0.leaseToken!)
		w.num(r0.leaseExpiresAt)
		w.uint(rows.length)
		for (const row of rows) w.uint(row.seq)
	},
	settled(w: Writer, row: Row, o: Outcome, now: number): void {
		switch (o.kind) {
			case 'completed':
				w.u8(Rec.Completed)
				w.uint(row.seq)
				w.num(now)
				w.str(o.output)
				w.u8(o.remove ? 1 : 0)
				break
			case 'retry':
				w.u8(Rec.Retry)
				w.uint(row.seq)
				w.num(now)
				w.num(o.runAt)
				writeError(w, o.error)
				break
			case 'dead':
				w.u8(Rec.Dead)
				w.uint(row.seq)
				w.num(now)
				writeError(w, o.error)
				break
			case 'suspended':
				w.u8(Rec.Suspended)
				w.uint(row.seq)
				w.num(now)
				w.num(o.wakeAt ?? -1)
				w.u8(o.wakeAt === null ? 0 : 1)
				break
			case 'released':
				w.u8(Rec.Released)
				w.uint(row.seq)
				w.num(now)
				break
		}
	},
	simple(w: Writer, type: Rec, row: Row, now: number): void {
		w.u8(type)
		w.uint(row.seq)
		w.num(now)
	},
	removed(w: Writer, row: Row): void {
		w.u8(Rec.Removed)
		w.uint(row.seq)
	},
	logged(w: Writer, row: Row, lines: readonly string[]): void {
		w.u8(Rec.Logged)
		w.uint(row.seq)
		w.uint(lines.length)
		for (const l of lines) w.str(l)
	},
	step(w: Writer, row: Row, step: StepRow): void {
		w.u8(Rec.Step)
		w.uint(row.seq)
		writeStep(w, step)
		writeStepIndex(w, row, step)
	},
	waiter(w: Writer, waiter: WaiterRow): void {
		w.u8(Rec.Waiter)
		w.str(waiter.id)
		w.str(waiter.jobId)
		w.str(waiter.topic)
		w.nstr(waiter.match)
		w.num(waiter.createdAt)
		w.uint(waiter.events.length)
		for (const e of waiter.events) w.str(e)
	},
	waiterTrim(w: Writer, id: string, drop: number | 'all'): void {
		w.u8(Rec.WaiterTrim)
		w.str(id)
		w.num(drop === 'all' ? -1 : drop)
	},
	published(w: Writer, event: PublishedEvent, now: number): void {
		w.u8(Rec.Published)
		w.str(event.topic)
		w.str(event.subject)
		w.str(event.payload)
		w.num(now)
	},
	snapshot(w: Writer, seq: number, count: number): void {
		w.u8(Rec.Snapshot)
		w.uint(seq)
		w.uint(count)
	},
	row(w: Writer, row: Row): void {
		w.u8(Rec.Row)
		w.uint(row.seq)
		w.str(row.id)
		w.str(row.name)
		w.str(row.input)
		w.u8(STATUS_CODE[row.status])
		w.num(row.priority)
		w.num(row.runAt)
		w.num(row.attempt)
		w.num(row.maxAttempts)
		w.nstr(row.leaseOwner)
		w.nstr(row.leaseToken)
		w.nstr(row.dedupeKey)
		w.u8(scopeCode(row.dedupeScope))
		w.nstr(row.idempotencyKey)
		w.nstr(row.output)
		w.uint(row.errors.length)
		for (const e of row.errors) writeError(w, e)
		w.uint(row.logs.length)
		for (const l of row.logs) w.str(l)
		w.nstr(row.parentId)
		w.nstr(row.backoff)
		w.num(row.createdAt)
		w.num(row.updatedAt)
		w.num(row.startedAt ?? -1)
		w.num(row.finishedAt ?? -1)
		const steps = row.steps ? [...row.steps.values()] : []
		w.uint(steps.length)
		for (const s of steps) writeStep(w, s)
		writeConcurrency(w, row.concurrency)
		for (const s of steps) writeStepIndex(w, row, s)
	},
}

function writeStepIndex(w: Writer, row: Row, s: StepRow): void {
	if (s.index === null) return
	w.u8(Rec.StepIndex)
	w.uint(row.seq)
	w.str(s.stepId)
	w.num(s.index)
}

function writeStep(w: Writer, s: StepRow): void {
	w.str(s.stepId)
	w.str(s.name)
	w.u8(STEP_CODE[s.state])
	w.nstr(s.output)
	if (s.error) {
		w.u8(1)
		writeError(w, s.error)
	} else {
		w.u8(0)
	}
	w.num(s.createdAt)
	w.num(s.updatedAt)
}

function readStep(r: Reader, jobId: string): StepRow {
	const stepId = r.str()
	const name = r.str()
	const state = STEP_STATE[r.u8()] ?? r.fail('bad step state')
	const output = r.nstr() as JsonText | null
	const error = r.u8() === 1 ? readError(r) : null
	const createdAt = r.num()
	const updatedAt = r.num()
	return { jobId, stepId, name, state, index: null, output, error, createdAt, updatedAt }
}

/** Rebuilds state from records, applying each through the memory storage's own methods. */
export class Replayer {
	/** Jobs by sequence number, while replaying (an array: sequence numbers are small and dense). */
	private readonly bySeq: (Row | undefined)[] = []
	/** Job names seen, so a million jobs share one string per name. */
	private readonly names = new Map<string, string>()
	/** Whether the log began with a snapshot. */
	snapshotSeen = false
	records = 0

	constructor(private readonly mem: MemoryStorage) {}

	private row(r: Reader, seq: number): Row {
		const row = this.bySeq[seq]
		if (row === undefined) r.fail(`job #${seq} is unknown`)
		return row
	}

	private name(s: string): string {
		const known = this.names.get(s)
		if (known !== undefined) return known
		this.names.set(s, s)
		return s
	}

	/** Applies every record of one frame. `first` is true for the log's first frame. */
	apply(r: Reader, first: boolean): void {
		const mem = this.mem
		while (!r.done) {
			const start = r.pos
			const type = r.u8()
			this.records++
			switch (type) {
				case Rec.Create: {
					const seq = r.uint()
					const id = r.str()
					const name = this.name(r.str())
					const input = r.str() as JsonText
					const priority = r.num()
					const runAt = r.num()
					const maxAttempts = r.num()
					const dedupeKey = r.nstr()
					const dedupeScope = scopeOf(r.u8(), r) ?? 'pending+active'
					const idempotencyKey = r.nstr()
					const parentId = r.nstr()
					const backoff = r.nstr() as JsonText | null
					const now = r.num()
					const claimed = r.u8() === 1
					const lease = claimed ? { owner: r.str(), token: r.str(), expiresAt: r.num() } : null
					const concurrency = readConcurrency(r)
					// A duplicate id would leave the map's size as it was (the replay fails then, so the
					// row it overwrote does not matter); one lookup instead of two.
					const size = mem.rows.size
					mem.seq = seq - 1
					const row = mem.create(
						{
							id,
							name,
							input,
							priority,
							runAt,
							maxAttempts,
							dedupeKey,
							dedupeScope,
							idempotencyKey,
							parentId,
							backoff,
							concurrency,
						},
						now,
						lease,
					)
					if (mem.rows.size === size) r.fail(`job ${id} is created twice`)
					this.bySeq[seq] = row
					break
				}
				case Rec.Claim: {
					const now = r.num()
					const owner = r.str()
					const token = r.str()
					const expiresAt = r.num()
					const n = r.uint()
					for (let i = 0; i < n; i++) {
						const row = this.row(r, r.uint())
						if (row.status !== 'pending') r.fail(`job ${row.id} is claimed while ${row.status}`)
						mem.applyClaim(row, owner, token, expiresAt, now)
					}
					break
				}
				case Rec.Completed: {
					const row = this.active(r)
					const now = r.num()
					const output = r.str() as JsonText
					const remove = r.u8() === 1
					mem.applyOutcome(row, { kind: 'completed', id: row.id, token: '', output, remove }, now)
					if (remove) this.bySeq[row.seq] = undefined
					break
				}
				case Rec.Retry: {
					const row = this.active(r)
					const now = r.num()
					const runAt = r.num()
					const error = readError(r)
					mem.applyOutcome(row, { kind: 'retry', id: row.id, token: '', runAt, error }, now)
					break
				}
				case Rec.Dead: {
					const row = this.active(r)
					const now = r.num()
					const error = readError(r)
					mem.applyOutcome(row, { kind: 'dead', id: row.id, token: '', error }, now)
					break
				}
				case Rec.Suspended: {
					const row = this.active(r)
					const now = r.num()
					const at = r.num()
					const wakeAt = r.u8() === 1 ? at : null
					mem.applyOutcome(row, { kind: 'suspended', id: row.id, token: '', wakeAt }, now)
					break
				}
				case Rec.Released: {
					const row = this.active(r)
					mem.applyOutcome(row, { kind: 'released', id: row.id, token: '' }, r.num())
					break
				}
				case Rec.Reaped: {
					const row = this.active(r)
					mem.applyReap(row, r.num())
					break
				}
				case Rec.Woken: {
					const row = this.row(r, r.uint())
					const now = r.num()
					if (!mem.wakeOne(row.id, now)) r.fail(`job ${row.id} is woken while ${row.status}`)
					break
				}
				case Rec.Cancelled: {
					const row = this.row(r, r.uint())
					if (row.status !== 'pending' && row.status !== 'active' && row.status !== 'waiting') {
						r.fail(`job ${row.id} is cancelled while ${row.status}`)
					}
					mem.applyCancel(row, r.num())
					break
				}
				case Rec.Replayed: {
					const row = this.row(r, r.uint())
					if (row.status !== 'dead') r.fail(`job ${row.id} is replayed while ${row.status}`)
					mem.applyReplay(row, r.num())
					break
				}
				case Rec.Removed: {
					const row = this.row(r, r.uint())
					mem.remove(row)
					this.bySeq[row.seq] = undefined
					break
				}
				case Rec.Logged: {
					const row = this.row(r, r.uint())
					const n = r.uint()
					const lines: string[] = []
					for (let i = 0; i < n; i++) lines.push(r.str())
					mem.applyLogs(row, lines)
					break
				}
				case Rec.Step: {
					const row = this.row(r, r.uint())
					mem.applyStep(row, readStep(r, row.id))
					break
				}
				case Rec.StepIndex: {
					const row = this.row(r, r.uint())
					const stepId = r.str()
					const index = r.num()
					const step = row.steps?.get(stepId) ?? r.fail(`step ${stepId} of job ${row.id} is unknown`)
					row.steps!.set(stepId, { ...step, index })
					break
				}
				case Rec.Waiter: {
					const id = r.str()
					const jobId = r.str()
					const topic = r.str()
					const match = r.nstr() as JsonText | null
					const createdAt = r.num()
					const events: JsonText[] = []
					for (let i = r.uint(); i > 0; i--) events.push(r.str() as JsonText)
					mem.applyWaiter({ id, jobId, topic, match, events, createdAt })
					break
				}
				case Rec.WaiterTrim: {
					const id = r.str()
					const drop = r.num()
					mem.applyTrim(id, drop === -1 ? 'all' : drop)
					break
				}
				case Rec.Published: {
					const topic = r.str()
					const subject = r.str() as JsonText
					const payload = r.str() as JsonText
					mem.applyPublish({ topic, subject, payload }, r.num())
					break
				}
				case Rec.Meta: {
					const key = r.str()
					const value = r.nstr()
					mem.applyMeta(key, value === null ? null : JSON.parse(value))
					break
				}
				case Rec.Debounced: {
					const row = this.row(r, r.uint())
					const now = r.num()
					const input = r.str() as JsonText
					const runAt = r.num()
					if (row.status !== 'pending') r.fail(`job ${row.id} is debounced while ${row.status}`)
					mem.applyDebounce(row, input, runAt, now)
					break
				}
				case Rec.Snapshot: {
					if (!first || this.records !== 1) r.fail('a snapshot inside the log')
					const seq = r.uint()
					r.uint() // the job count, informative
					this.snapshotSeen = true
					mem.seq = seq
					break
				}
				case Rec.Row: {
					if (!this.snapshotSeen) r.fail('a snapshot row outside a snapshot')
					const row = this.readRow(r)
					mem.restore(row)
					this.bySeq[row.seq] = row
					break
				}
				default:
					r.pos = start
					r.fail(`unknown record type ${type}`)
			}
		}
	}

	/** After the last record: the sequence counter as it was. */
	finish(seq: number): void {
		if (seq > this.mem.seq) this.mem.seq = seq
		this.bySeq.length = 0
	}

	private active(r: Reader): Row {
		const row = this.row(r, r.uint())
		if (row.status !== 'active') r.fail(`job ${row.id} is settled while ${row.status}`)
		return row
	}

	private readRow(r: Reader): Row {
		const seq = r.uint()
		const id = r.str()
		const name = this.name(r.str())
		const input = r.str() as JsonText
		const status = STATUS[r.u8()] ?? r.fail('bad status')
		const priority = r.num()
		const runAt = r.num()
		const attempt = r.num()
		const maxAttempts = r.num()
		const leaseOwner = r.nstr()
		const leaseToken = r.nstr()
		const dedupeKey = r.nstr()
		const dedupeScope = scopeOf(r.u8(), r)
		const idempotencyKey = r.nstr()
		const output = r.nstr() as JsonText | null
		const errors: AttemptError[] = []
		for (let i = r.uint(); i > 0; i--) errors.push(readError(r))
		const logs: string[] = []
		for (let i = r.uint(); i > 0; i--) logs.push(r.str())
		const parentId = r.nstr()
		const backoff = r.nstr() as JsonText | null
		const createdAt = r.num()
		const updatedAt = r.num()
		const startedAt = r.num()
		const finishedAt = r.num()
		let steps: Map<string, StepRow> | null = null
		for (let i = r.uint(); i > 0; i--) {
			const s = readStep(r, id)
			steps ??= new Map()
			steps.set(s.stepId, s)
		}
		const concurrency = readConcurrency(r)
		if (this.mem.rows.has(id)) r.fail(`job ${id} is in the snapshot twice`)
		if (status === 'active' && (leaseOwner === null || leaseToken === null))
			r.fail('an active job without lease')
		return Row.from({
			id,
			name,
			input,
			status,
			priority,
			runAt,
			attempt,
			maxAttempts,
			leaseOwner,
			leaseToken,
			leaseExpiresAt: 0,
			dedupeKey,
			dedupeScope,
			idempotencyKey,
			output,
			errors,
			logs,
			parentId,
			backoff,
			concurrency,
			createdAt,
			updatedAt,
			startedAt: startedAt === -1 ? null : startedAt,
			finishedAt: finishedAt === -1 ? null : finishedAt,
			seq,
			pendingEpoch: 0,
			steps,
		})
	}
}
