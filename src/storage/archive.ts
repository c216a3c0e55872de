/**
 * Completed jobs kept compactly: columns of numbers in typed arrays and the strings (id, input,
 * output) as UTF-8 bytes in one buffer, found by id through an open-addressing hash table of the
 * id bytes. No object per job: a million completed jobs cost about 130 bytes each instead of a row
 * of objects, and loading them makes no garbage.
 *
 * The file log's replay puts here the jobs that were simply enqueued, claimed and completed (no
 * dedupe or idempotency key, parent, backoff, concurrency, error or step): most finished jobs. The
 * memory storage reads them through `MemoryStorage.archive` as rows made on demand; they can only
 * gain log lines (a late `ctx.log` of a worker that lost its lease) or be pruned. Internal.
 */
import type { JsonText } from '../json.js'
import { newRow, type Row } from './row.js'

type FastBuffer = Buffer & {
	utf8Write(s: string, offset: number, length?: number): number
	utf8Slice(start: number, end: number): string
}

/** The bytes kept above this go elsewhere: offsets are 32-bit. */
const MAX_BLOB = 2 ** 31

function fnv(buf: Uint8Array, start: number, end: number): number {
	let h = 0x811c9dc5
	for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193)
	return h >>> 0
}

/** Copies `src[start, end)` to `dst` at `at`; returns where it ends there. */
function copy(src: Uint8Array, start: number, end: number, dst: Buffer, at: number): number {
	if (end - start > 64) return at + (src as Buffer).copy(dst, at, start, end)
	for (let i = start; i < end; i++) dst[at++] = src[i]!
	return at
}

function grow<T extends Float64Array | Uint32Array | Uint8Array>(a: T, n: number): T {
	const next = new (a.constructor as new (n: number) => T)(n)
	next.set(a)
	return next
}

/** Completed jobs, in the order they were added (ascending `seq`). */
export class Archive {
	/** Jobs kept (not removed). */
	size = 0
	/** Slots used (removed ones included). */
	slots = 0
	/** Job names, by index. */
	readonly names: string[] = []
	private readonly nameIndex = new Map<string, number>()
	private cap = 0
	private seq = new Float64Array(0)
	private name = new Uint32Array(0)
	/** priority, runAt, attempt, maxAttempts, createdAt, updatedAt, startedAt, finishedAt. */
	private num = new Float64Array(0)
	/** Where the id starts in `blob`; the input and output follow it. */
	private at = new Uint32Array(0)
	/** Byte lengths of id, input, output. */
	private len = new Uint32Array(0)
	private gone = new Uint8Array(0)
	private blob: FastBuffer = Buffer.allocUnsafe(1 << 16) as FastBuffer
	private used = 0
	/** Pairs (slot + 1, id hash) placed by id hash; slot + 1 = 0: empty. */
	private table = new Int32Array(2048)
	/** Log lines added after the job was archived, by slot. */
	private readonly logs = new Map<number, string[]>()
	private scratch: FastBuffer = Buffer.allocUnsafe(256) as FastBuffer

	/** An archive sized for about `expected` jobs and `bytes` bytes of strings. */
	constructor(expected = 0, bytes = 0) {
		if (bytes > this.blob.length) this.blob = Buffer.allocUnsafe(Math.min(bytes, MAX_BLOB)) as FastBuffer
		if (expected > 0) {
			this.resize(expected)
			let size = 2048
			while (size < expected * 4) size *= 2
			this.table = new Int32Array(size)
		}
	}

	/** The index of a job name (added if new). */
	nameId(name: string): number {
		let i = this.nameIndex.get(name)
		if (i === undefined) {
			i = this.names.length
			this.names.push(name)
			this.nameIndex.set(name, i)
		}
		return i
	}

	/**
	 * Adds a completed job whose strings are UTF-8 bytes of `src`. Returns false if it cannot be
	 * kept here (the byte buffer is full), true if added; throws `Error('duplicate')` if a job with
	 * the same id is here already.
	 */
	add(
		seq: number,
		nameId: number,
		nums: readonly [number, number, number, number, number, number, number, number],
		src: Uint8Array,
		idStart: number,
		idEnd: number,
		inputStart: number,
		inputEnd: number,
		outputStart: number,
		outputEnd: number,
	): boolean {
		const idLen = idEnd - idStart
		const inputLen = inputEnd - inputStart
		const outputLen = outputEnd - outputStart
		const bytes = idLen + inputLen + outputLen
		if (this.used + bytes > MAX_BLOB) return false
		const h = fnv(src, idStart, idEnd)
		const i = this.slots
		// Room in the table first: the probe below finds the free place the job goes to.
		if ((i + 1) * 4 > this.table.length) this.rehash(this.table.length * 2)
		const place = this.probe(h, src, idStart, idEnd)
		if (place >= 0) throw new Error('duplicate')
		if (i === this.cap) this.resize(Math.max(1024, this.cap * 2))
		if (this.used + bytes > this.blob.length) {
			let size = this.blob.length * 2
			while (size < this.used + bytes) size *= 2
			const next = Buffer.allocUnsafe(Math.min(size, MAX_BLOB)) as FastBuffer
			this.blob.copy(next, 0, 0, this.used)
			this.blob = next
		}
		const b = this.blob
		const at = this.used
		let p = copy(src, idStart, idEnd, b, at)
		p = copy(src, inputStart, inputEnd, b, p)
		this.used = copy(src, outputStart, outputEnd, b, p)
		this.at[i] = at
		this.len[i * 3] = idLen
		this.len[i * 3 + 1] = inputLen
		this.len[i * 3 + 2] = outputLen
		this.seq[i] = seq
		this.name[i] = nameId
		const num = this.num
		const o = i * 8
		for (let k = 0; k < 8; k++) num[o + k] = nums[k]!
		this.slots++
		this.size++
		const t = this.table
		t[-place - 1] = i + 1
		t[-place] = h
		return true
	}

	private resize(cap: number): void {
		this.cap = cap
		this.seq = grow(this.seq, cap)
		this.name = grow(this.name, cap)
		this.num = grow(this.num, cap * 8)
		this.at = grow(this.at, cap)
		this.len = grow(this.len, cap * 3)
		this.gone = grow(this.gone, cap)
	}

	private insert(i: number, h: number): void {
		const t = this.table
		const mask = t.length - 2
		let p = (h << 1) & mask
		while (t[p] !== 0) p = (p + 2) & mask
		t[p] = i + 1
		t[p + 1] = h
	}

	private rehash(size: number): void {
		const old = this.table
		this.table = new Int32Array(size)
		for (let p = 0; p < old.length; p += 2) {
			const s = old[p]!
			if (s !== 0 && this.gone[s - 1] !== 1) this.insert(s - 1, old[p + 1]!)
		}
	}

	/**
	 * The slot of the job whose id is `src[start, end)` (of hash `h`), or if there is none,
	 * -1 - the table index of the free place it would go to.
	 */
	private probe(h: number, src: Uint8Array, start: number, end: number): number {
		const t = this.table
		const mask = t.length - 2
		const n = end - start
		const b = this.blob
		h |= 0
		for (let p = (h << 1) & mask; ; p = (p + 2) & mask) {
			const s = t[p]!
			if (s === 0) return -1 - p
			if (t[p + 1] !== h) continue
			const i = s - 1
			if (this.gone[i] === 1 || this.len[i * 3] !== n) continue
			const at = this.at[i]!
			let k = 0
			while (k < n && b[at + k] === src[start + k]) k++
			if (k === n) return i
		}
	}

	/** The slot of the job with this id, or -1. */
	slotOf(id: string): number {
		if (this.size === 0) return -1
		if (id.length * 3 > this.scratch.length) this.scratch = Buffer.allocUnsafe(id.length * 3) as FastBuffer
		const n = this.scratch.utf8Write(id, 0)
		const i = this.probe(fnv(this.scratch, 0, n), this.scratch, 0, n)
		return i < 0 ? -1 : i
	}

	seqAt(i: number): number {
		return this.seq[i]!
	}
	nameAt(i: number): string {
		return this.names[this.name[i]!]!
	}
	finishedAt(i: number): number {
		return this.num[i * 8 + 7]!
	}
	removed(i: number): boolean {
		return this.gone[i] === 1
	}

	/** The bytes holding the strings (see `spans`). */
	get bytes(): Buffer {
		return this.blob
	}

	/** Where in `bytes` the id, input and output of slot `i` are: [id, idEnd = input, inputEnd = output, outputEnd]. */
	spans(i: number, out: number[]): void {
		const at = this.at[i]!
		out[0] = at
		out[1] = at + this.len[i * 3]!
		out[2] = out[1] + this.len[i * 3 + 1]!
		out[3] = out[2] + this.len[i * 3 + 2]!
	}

	/** Number `k` of slot `i`: priority, runAt, attempt, maxAttempts, createdAt, updatedAt, startedAt, finishedAt. */
	numAt(i: number, k: number): number {
		return this.num[i * 8 + k]!
	}

	/** Log lines added to slot `i` since it was archived. */
	logsAt(i: number): readonly string[] {
		return this.logs.get(i) ?? []
	}

	/** The job in slot `i` as a row (a new object each call; changing it changes nothing here). */
	row(i: number): Row {
		const b = this.blob
		const at = this.at[i]!
		const idEnd = at + this.len[i * 3]!
		const inputEnd = idEnd + this.len[i * 3 + 1]!
		const outputEnd = inputEnd + this.len[i * 3 + 2]!
		const n = this.num
		const o = i * 8
		const row = newRow(
			b.utf8Slice(at, idEnd),
			this.names[this.name[i]!]!,
			b.utf8Slice(idEnd, inputEnd) as JsonText,
			n[o]!,
			n[o + 1]!,
			n[o + 3]!,
			n[o + 4]!,
			this.seq[i]!,
		)
		row.status = 'completed'
		row.attempt = n[o + 2]!
		row.updatedAt = n[o + 5]!
		row.startedAt = n[o + 6]!
		row.finishedAt = n[o + 7]!
		row.output = b.utf8Slice(inputEnd, outputEnd) as JsonText
		const logs = this.logs.get(i)
		if (logs) row.addLogs(logs, Number.POSITIVE_INFINITY)
		return row
	}

	/** Appends log lines to the job in slot `i`, keeping the last `max`. */
	addLogs(i: number, lines: readonly string[], max: number): void {
		let target = this.logs.get(i)
		if (!target) {
			target = []
			this.logs.set(i, target)
		}
		target.push(...lines)
		if (target.length > max) target.splice(0, target.length - max)
	}

	/** Removes the job in slot `i`. */
	remove(i: number): void {
		if (this.gone[i] === 1) return
		this.gone[i] = 1
		this.size--
		this.logs.delete(i)
	}
}
