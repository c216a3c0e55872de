/**
 * The file log's records: one per change the memory storage journals, and one per job in a
 * snapshot. Records name jobs by their insertion sequence number (a varint) instead of their id.
 *
 * Every record starts with its type byte. A lease is not logged beyond the claim: when the log is
 * opened again, the process that held it is gone, so every lease found is treated as expired.
 */
import { StorageCorruptError } from '../../errors.js'
import type { ConcurrencySpec } from '../../flow/limits.js'
import type { JsonText } from '../../json.js'
import { Archive } from '../archive.js'
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
import { newRow, Row } from '../row.js'
import type { Writer } from './codec.js'
import { Reader } from './codec.js'

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

const spans = [0, 0, 0, 0]

/** A snapshot's Row record of archived job `i`, written from the archive's columns and bytes. */
export function encodeArchived(w: Writer, a: Archive, i: number): void {
	const b = a.bytes
	a.spans(i, spans)
	w.u8(Rec.Row)
	w.uint(a.seqAt(i))
	w.raw(b, spans[0]!, spans[1]!)
	w.str(a.nameAt(i))
	w.raw(b, spans[1]!, spans[2]!)
	w.u8(STATUS_CODE.completed)
	w.num(a.numAt(i, 0)) // priority
	w.num(a.numAt(i, 1)) // runAt
	w.num(a.numAt(i, 2)) // attempt
	w.num(a.numAt(i, 3)) // maxAttempts
	w.u8(0) // lease owner
	w.u8(0) // lease token
	w.u8(0) // dedupe key
	w.u8(0) // dedupe scope
	w.u8(0) // idempotency key
	w.raw(b, spans[2]!, spans[3]!, true) // output
	w.uint(0) // errors
	const logs = a.logsAt(i)
	w.uint(logs.length)
	for (const l of logs) w.str(l)
	w.u8(0) // parent
	w.u8(0) // backoff
	w.num(a.numAt(i, 4)) // createdAt
	w.num(a.numAt(i, 5)) // updatedAt
	w.num(a.numAt(i, 6)) // startedAt
	w.num(a.numAt(i, 7)) // finishedAt
	w.uint(0) // steps
	w.u8(0) // concurrency
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

const PENDING = 1
const ACTIVE = 2
const COMPLETED = 3

function grown<T extends Float64Array | Uint8Array>(a: T, n: number): T {
	const next = new (a.constructor as new (n: number) => T)(n)
	next.set(a)
	return next
}

/**
 * Rebuilds state from records, applying each through the memory storage's own methods.
 *
 * Plain jobs (created with no dedupe or idempotency key, parent, backoff or concurrency, and not
 * claimed at once) are not made into rows as their Create record is read: they are candidates,
 * a few numbers (where their Create and Claim records are, the times) in typed arrays. A Claim and
 * a Completed record move a candidate along; any other record about it makes it a row first (as
 * it would have been). At the end, completed candidates go to the archive (no object per job)
 * and the others become rows. Most jobs of a long log are plain and completed: the replay makes
 * neither their rows nor their strings.
 */
export class Replayer {
	/**
	 * Jobs by sequence number, while replaying (an array: sequence numbers are small and dense):
	 * a row, or a candidate's index.
	 */
	private readonly bySeq: (Row | number | undefined)[] = []
	/** The log's bytes (candidates point into them). */
	private data: Buffer | null = null
	private cands = 0
	/** Where its Create record's fields start. */
	private cCreate = new Float64Array(0)
	/** Where its Claim record's fields start (0: not claimed). */
	private cClaim = new Float64Array(0)
	private cClaimNow = new Float64Array(0)
	private cDoneNow = new Float64Array(0)
	/** Where its output starts (its length varint). */
	private cOutput = new Float64Array(0)
	/** PENDING, ACTIVE, COMPLETED, or 0 when it became a row or was removed. */
	private cState = new Uint8Array(0)
	/** 1 if it comes from a snapshot's Row record (completed), 0 from a Create record. */
	private cRow = new Uint8Array(0)
	/**
	 * Candidates claimed since the last Waiter record, some settled since (made rows if a waiter
	 * shows up: it may be theirs, as the record names its job by id). Trimmed as it grows.
	 */
	private cActive: number[] = []
	/** The highest seq put in the memory storage's rows, and whether one came after a higher one. */
	private lastRowSeq = 0
	private disordered = false
	/** Numbers of a job going to the archive (reused). */
	private readonly nums: [number, number, number, number, number, number, number, number] = [
		0, 0, 0, 0, 0, 0, 0, 0,
	]
	/** Job names seen, so a million jobs share one string per name. */
	private readonly names = new Map<string, string>()
	/** Whether the log began with a snapshot. */
	snapshotSeen = false
	records = 0

	constructor(private readonly mem: MemoryStorage) {}

	private row(r: Reader, seq: number): Row {
		const row = this.bySeq[seq]
		if (row === undefined) r.fail(`job #${seq} is unknown`)
		return typeof row === 'number' ? this.materialize(row) : row
	}

	private addCandidate(seq: number, createAt: number): number {
		const c = this.cands++
		if (c === this.cState.length) {
			// About one job per 64 bytes of log at first (a Create, Claim and Completed take ~80).
			const n = Math.max(c * 2, c === 0 ? (this.data!.length >> 6) + 1024 : 0)
			this.cCreate = grown(this.cCreate, n)
			this.cClaim = grown(this.cClaim, n)
			this.cClaimNow = grown(this.cClaimNow, n)
			this.cDoneNow = grown(this.cDoneNow, n)
			this.cOutput = grown(this.cOutput, n)
			this.cState = grown(this.cState, n)
			this.cRow = grown(this.cRow, n)
		}
		this.cCreate[c] = createAt
		this.cState[c] = PENDING
		this.cRow[c] = 0
		this.bySeq[seq] = c
		if (seq > this.mem.seq) this.mem.seq = seq
		return c
	}

	/**
	 * Reads a snapshot's Row record (after its type byte) far enough to tell whether it is a plain
	 * completed job (as the archive keeps them: no lease, keys, errors, logs, parent, backoff,
	 * steps or concurrency); if so, returns its seq and leaves `r` after it, else returns -1 and
	 * leaves `r` where it was.
	 */
	private plainRow(r: Reader): number {
		const start = r.pos
		const seq = r.uint()
		r.span() // id
		r.span() // name
		r.span() // input
		let plain = r.u8() === 3 // completed
		r.skipNum() // priority
		r.skipNum() // runAt
		r.skipNum() // attempt
		r.skipNum() // maxAttempts
		plain = r.nspan() === -1 && plain // lease owner
		plain = r.nspan() === -1 && plain // lease token
		plain = r.nspan() === -1 && plain // dedupe key
		r.u8() // dedupe scope
		plain = r.nspan() === -1 && plain // idempotency key
		plain = r.nspan() !== -1 && plain // output
		plain = r.uint() === 0 && plain // errors
		plain = r.uint() === 0 && plain // logs
		if (plain) {
			plain = r.nspan() === -1 // parent
			plain = r.nspan() === -1 && plain // backoff
			r.skipNum() // createdAt
			r.skipNum() // updatedAt
			plain = r.num() !== -1 && plain // startedAt
			plain = r.num() !== -1 && plain // finishedAt
			plain = r.uint() === 0 && plain // steps
			plain = r.u8() === 0 && plain // concurrency
		}
		if (!plain) r.pos = start
		return plain ? seq : -1
	}

	/** Reads the fields of a Create record (after its type byte). */
	private readCreate(r: Reader) {
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
		const job = {
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
		}
		return { seq, job, now, lease }
	}

	/**
	 * Reads a Create record (after its type byte) far enough to tell whether it makes a plain
	 * job; if so, returns its seq and leaves `r` after the record, else returns -1 and leaves `r`
	 * where it was.
	 */
	private plainCreate(r: Reader): number {
		const start = r.pos
		const seq = r.uint()
		r.span() // id
		r.span() // name
		r.span() // input
		r.skipNum() // priority
		r.skipNum() // runAt
		r.skipNum() // maxAttempts
		let plain = r.nspan() === -1 // dedupe key
		r.u8() // dedupe scope
		plain = r.nspan() === -1 && plain // idempotency key
		plain = r.nspan() === -1 && plain // parent
		plain = r.nspan() === -1 && plain // backoff
		r.skipNum() // now
		plain = r.u8() === 0 && plain // claimed at once
		plain = r.u8() === 0 && plain // concurrency
		if (!plain) r.pos = start
		return plain ? seq : -1
	}

	private reader: Reader | null = null

	/** A reader of the log's bytes from `at` on (one, reused). */
	private at(at: number): Reader {
		const data = this.data!
		if (this.reader?.buf !== data) this.reader = Reader.of(data, at, data.length, 0)
		this.reader.pos = at
		return this.reader
	}

	/** Makes candidate `c` a row, as it would be had it been one all along. */
	private materialize(c: number): Row {
		const state = this.cState[c]!
		if (this.cRow[c] === 1) {
			const row = this.readRow(this.at(this.cCreate[c]!))
			this.cState[c] = 0
			this.mem.restore(row)
			this.bySeq[row.seq] = row
			this.placed(row.seq)
			return row
		}
		const { seq, job, now } = this.readCreate(this.at(this.cCreate[c]!))
		const row = newRow(job.id, job.name, job.input, job.priority, job.runAt, job.maxAttempts, now, seq)
		if (state !== PENDING) {
			const claimNow = this.cClaimNow[c]!
			row.attempt = 1
			row.startedAt = claimNow
			row.updatedAt = claimNow
			if (state === ACTIVE) {
				const r = this.at(this.cClaim[c]!)
				r.num() // now
				row.status = 'active'
				row.leaseOwner = r.str()
				row.leaseToken = r.str()
				row.leaseExpiresAt = r.num()
			} else {
				const r = this.at(this.cOutput[c]!)
				row.status = 'completed'
				row.output = r.str() as JsonText
				row.updatedAt = this.cDoneNow[c]!
				row.finishedAt = this.cDoneNow[c]!
			}
		}
		this.cState[c] = 0
		this.mem.restore(row)
		this.bySeq[seq] = row
		this.placed(seq)
		return row
	}

	/** Drops the candidates no longer claimed from `cActive` (when it doubled since the last trim). */
	private trimActive(): void {
		const kept = this.cActive.filter((c) => this.cState[c] === ACTIVE)
		this.cActive = kept
		this.activeLimit = Math.max(4096, kept.length * 2)
	}
	private activeLimit = 4096

	/** Notes a row put in the memory storage's rows. */
	private placed(seq: number): void {
		if (seq < this.lastRowSeq) this.disordered = true
		else this.lastRowSeq = seq
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
		this.data ??= r.buf
		while (!r.done) {
			const start = r.pos
			const type = r.u8()
			this.records++
			switch (type) {
				case Rec.Create: {
					const plain = this.plainCreate(r)
					if (plain !== -1) {
						if (this.bySeq[plain] !== undefined) r.fail(`job #${plain} is created twice`)
						this.addCandidate(plain, start + 1)
						break
					}
					const { seq, job, now, lease } = this.readCreate(r)
					// A duplicate id would leave the map's size as it was (the replay fails then, so the
					// row it overwrote does not matter); one lookup instead of two.
					const size = mem.rows.size
					mem.seq = seq - 1
					const row = mem.create(job, now, lease)
					if (mem.rows.size === size) r.fail(`job ${job.id} is created twice`)
					this.bySeq[seq] = row
					this.placed(seq)
					break
				}
				case Rec.Claim: {
					const now = r.num()
					const owner = r.str()
					const token = r.str()
					const expiresAt = r.num()
					const n = r.uint()
					for (let i = 0; i < n; i++) {
						const seq = r.uint()
						const c = this.bySeq[seq]
						if (typeof c === 'number' && this.cState[c] === PENDING) {
							this.cState[c] = ACTIVE
							this.cClaim[c] = start + 1
							this.cClaimNow[c] = now
							if (this.cActive.push(c) > this.activeLimit) this.trimActive()
							continue
						}
						const row = this.row(r, seq)
						if (row.status !== 'pending') r.fail(`job ${row.id} is claimed while ${row.status}`)
						mem.applyClaim(row, owner, token, expiresAt, now)
					}
					break
				}
				case Rec.Completed: {
					const at = r.pos
					const seq = r.uint()
					const c = this.bySeq[seq]
					if (typeof c === 'number' && this.cState[c] === ACTIVE) {
						this.cDoneNow[c] = r.num()
						this.cOutput[c] = r.pos
						r.span()
						if (r.u8() === 1) {
							// Completed and removed at once: nothing of it is left.
							this.cState[c] = 0
							this.bySeq[seq] = undefined
						} else {
							this.cState[c] = COMPLETED
						}
						break
					}
					r.pos = at
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
					const seq = r.uint()
					const c = this.bySeq[seq]
					if (typeof c === 'number' && this.cState[c] === COMPLETED) {
						this.cState[c] = 0
						this.bySeq[seq] = undefined
						break
					}
					const row = this.row(r, seq)
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
					// Its job may be a claimed candidate (the record names it by id, not seq).
					for (const c of this.cActive) if (this.cState[c] === ACTIVE) this.materialize(c)
					this.cActive = []
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
					const plain = this.plainRow(r)
					if (plain !== -1) {
						if (this.bySeq[plain] !== undefined) r.fail(`job #${plain} is in the snapshot twice`)
						const c = this.addCandidate(plain, start + 1)
						this.cState[c] = COMPLETED
						this.cRow[c] = 1
						break
					}
					const row = this.readRow(r)
					mem.restore(row)
					this.bySeq[row.seq] = row
					this.placed(row.seq)
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
		const mem = this.mem
		if (this.cands > 0) {
			let completed = 0
			for (let c = 0; c < this.cands; c++) if (this.cState[c] === COMPLETED) completed++
			const archive = new Archive(completed, completed * 48)
			for (let c = 0; c < this.cands; c++) {
				const state = this.cState[c]
				if (state === 0) continue
				if (state !== COMPLETED || !this.archiveOne(archive, c)) this.materialize(c)
			}
			if (archive.size > 0) mem.attachArchive(archive)
		}
		if (this.disordered) {
			// Rows made from candidates came after rows of higher seqs: put them back in seq order.
			const rows = [...mem.rows.values()].sort((a, b) => a.seq - b.seq)
			mem.rows.clear()
			for (const row of rows) mem.rows.set(row.id, row)
		}
		if (seq > mem.seq) mem.seq = seq
		this.bySeq.length = 0
		this.data = null
		this.reader = null
	}

	private lastName = { start: 0, end: 0, id: -1 }

	/** Puts completed candidate `c` in the archive; false if it has no room. */
	private archiveOne(archive: Archive, c: number): boolean {
		const data = this.data!
		const r = this.at(this.cCreate[c]!)
		const seq = r.uint()
		const idStart = r.span()
		const idEnd = r.pos
		const nameStart = r.span()
		const nameEnd = r.pos
		const inputStart = r.span()
		const inputEnd = r.pos
		const nums = this.nums
		let outputStart: number
		let outputEnd: number
		if (this.cRow[c] === 1) {
			r.u8() // status: completed
			nums[0] = r.num() // priority
			nums[1] = r.num() // runAt
			nums[2] = r.num() // attempt
			nums[3] = r.num() // maxAttempts
			r.nspan()
			r.nspan()
			r.nspan()
			r.u8()
			r.nspan()
			outputStart = r.nspan()
			outputEnd = r.pos
			r.uint()
			r.uint()
			r.nspan()
			r.nspan()
			nums[4] = r.num() // createdAt
			nums[5] = r.num() // updatedAt
			nums[6] = r.num() // startedAt
			nums[7] = r.num() // finishedAt
		} else {
			nums[0] = r.num() // priority
			nums[1] = r.num() // runAt
			nums[2] = 1 // attempt
			nums[3] = r.num() // maxAttempts
			r.nspan()
			r.u8()
			r.nspan()
			r.nspan()
			r.nspan()
			nums[4] = r.num() // createdAt
			const done = this.cDoneNow[c]!
			nums[5] = done // updatedAt
			nums[6] = this.cClaimNow[c]! // startedAt
			nums[7] = done // finishedAt
			r.pos = this.cOutput[c]!
			outputStart = r.span()
			outputEnd = r.pos
		}
		const last = this.lastName
		let same = last.id !== -1 && nameEnd - nameStart === last.end - last.start
		for (let k = 0; same && k < nameEnd - nameStart; k++) same = data[last.start + k] === data[nameStart + k]
		if (!same) {
			last.id = archive.nameId(this.name(data.toString('utf8', nameStart, nameEnd)))
			last.start = nameStart
			last.end = nameEnd
		}
		let added: boolean
		try {
			added = archive.add(
				seq,
				last.id,
				nums,
				data,
				idStart,
				idEnd,
				inputStart,
				inputEnd,
				outputStart,
				outputEnd,
			)
		} catch {
			throw new StorageCorruptError(
				`The file log has job ${data.toString('utf8', idStart, idEnd)} created twice. The file was left as it is.`,
			)
		}
		if (added) this.cState[c] = 0
		return added
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
