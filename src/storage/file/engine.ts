/**
 * The engine of the file log: the memory storage's state, plus an append-only log of every change
 * it journals, in binary frames written through one file handle.
 *
 * File layout: a 16-byte header (`SPOOLLOG`, format version, reserved), then frames. A frame is
 * `u32 length | u32 CRC-32 | records`: the records of one commit group, written with one write
 * and made durable with one fdatasync. A frame is all or nothing on replay, so a group of changes
 * is atomic. A compacted log starts with a snapshot (a `Snapshot` record and one `Row` record per
 * job, in frames of about 1 MiB) and goes on with ordinary frames.
 */
import {
	closeSync,
	existsSync,
	fdatasync,
	fstatSync,
	fsync,
	fsyncSync,
	ftruncateSync,
	mkdirSync,
	openSync,
	readFileSync,
	renameSync,
	unlinkSync,
	writeSync,
} from 'node:fs'
import { dirname } from 'node:path'
import { StorageCorruptError, StorageForeignError, StorageUnavailableError } from '../../errors.js'
import type { Logger } from '../../logger.js'
import type { Outcome, PublishedEvent, StepRow, WaiterRow } from '../contract.js'
import { type MemoryJournal, MemoryStorage, type Row } from '../memory.js'
import { Reader, Writer } from './codec.js'
import { crc32 } from './crc32.js'
import { acquireLock, releaseLock } from './lock.js'
import { encode, encodeArchived, Rec, Replayer } from './records.js'

const MAGIC = 'SPOOLLOG'
/** The format this code writes and reads. */
export const FORMAT_VERSION = 1
const HEADER_SIZE = 16
const FRAME_HEADER = 8
/** A frame longer than this is damage, not data. */
const MAX_FRAME = 1 << 30
const SNAPSHOT_FRAME = 1 << 20

/** How changes reach the disk. */
export type Durability = 'fsync' | 'interval' | 'none'

/** Settings of an engine (resolved options). */
export interface EngineSettings {
	readonly path: string
	readonly durability: Durability
	readonly intervalMs: number
	readonly compactAt: number
	readonly maxLogLines: number
	readonly pipeline: number
	readonly logger: Logger
}

/** What opening found, for tests and logs. */
export interface OpenReport {
	readonly bytes: number
	readonly records: number
	readonly jobs: number
	/** The offset a torn tail was cut at, if one was. */
	readonly truncatedAt: number | null
	/** Whether the log began with a snapshot (it was compacted). */
	readonly snapshot: boolean
}

interface Group {
	readonly promise: Promise<void>
	resolve(): void
	reject(err: Error): void
	synced: boolean
}

function newGroup(): Group {
	let resolve!: () => void
	let reject!: (err: Error) => void
	const promise = new Promise<void>((res, rej) => {
		resolve = res
		reject = rej
	})
	// A group nobody waits for must not report an unhandled rejection.
	promise.catch(() => {})
	return { promise, resolve, reject, synced: false }
}

const RESOLVED = Promise.resolve()

function writeAll(fd: number, buf: Uint8Array, start: number, end: number, position: number): void {
	while (start < end) {
		const n = writeSync(fd, buf, start, end - start, position)
		start += n
		position += n
	}
}

function fsyncDir(path: string): void {
	let fd: number
	try {
		fd = openSync(dirname(path), 'r')
	} catch {
		return
	}
	try {
		fsyncSync(fd)
	} catch {
		// Some platforms cannot fsync a directory; the rename is as durable as they make it.
	} finally {
		closeSync(fd)
	}
}

function header(): Buffer {
	const h = Buffer.alloc(HEADER_SIZE)
	h.write(MAGIC, 0, 'latin1')
	h.writeUInt32LE(FORMAT_VERSION, 8)
	return h
}

/** One file log, shared by every `fileLog()` handle of the same path in this process. */
export class Engine implements MemoryJournal {
	readonly mem: MemoryStorage
	/** Handles open on it. */
	refs = 0
	report: OpenReport | null = null
	/** Compactions done since open. */
	compactions = 0
	private fd = -1
	/** Bytes in the file. */
	private size = 0
	/** The records of the next group, after 8 bytes kept for its frame header. */
	private readonly w = new Writer()
	private current: Group | null = null
	private readonly inflight: Group[] = []
	private flushScheduled = false
	private failed: Error | null = null
	/** The compaction under way: its group, whose records are `w`'s bytes up to `end`. */
	private compacting: { readonly group: Group; readonly end: number } | null = null
	/** Compaction waits until the log is past this size. */
	private compactBelow: number
	private dirty = false
	private syncing = false
	private timer: ReturnType<typeof setInterval> | null = null
	private closed = false
	private readonly lockPath: string
	private readonly flushTask = () => this.flush()

	constructor(readonly settings: EngineSettings) {
		this.mem = new MemoryStorage({ maxLogLines: settings.maxLogLines })
		this.w.pos = FRAME_HEADER
		this.compactBelow = settings.compactAt
		this.lockPath = `${settings.path}.lock`
	}

	// ---- opening -------------------------------------------------------------------------------

	/** Takes the lock, replays the log into memory and opens it for appending. */
	async open(): Promise<void> {
		const { path } = this.settings
		mkdirSync(dirname(path), { recursive: true })
		await acquireLock(this.lockPath, path)
		try {
			this.load()
		} catch (err) {
			if (this.fd >= 0) closeSync(this.fd)
			this.fd = -1
			releaseLock(this.lockPath)
			throw err
		}
		this.mem.journal = this
		if (this.settings.durability === 'interval') {
			this.timer = setInterval(() => this.periodicSync(), this.settings.intervalMs)
			this.timer.unref()
		}
	}

	private load(): void {
		const { path } = this.settings
		const tmp = `${path}.compact`
		if (existsSync(tmp)) unlinkSync(tmp) // a compaction cut short: the log itself is whole
		let data: Buffer | null = null
		try {
			data = readFileSync(path)
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
		}
		const fresh = header()
		if (data === null || (data.length < HEADER_SIZE && fresh.subarray(0, data.length).equals(data))) {
			// New, or created by a process that died before the header was whole.
			this.fd = openSync(path, data === null ? 'wx' : 'r+')
			ftruncateSync(this.fd, 0)
			writeAll(this.fd, fresh, 0, HEADER_SIZE, 0)
			fsyncSync(this.fd)
			fsyncDir(path)
			this.size = HEADER_SIZE
			this.report = { bytes: HEADER_SIZE, records: 0, jobs: 0, truncatedAt: null, snapshot: false }
			return
		}
		if (data.length < HEADER_SIZE || data.toString('latin1', 0, 8) !== MAGIC) {
			throw new StorageForeignError(
				`${path} is not a spool file log (it does not start with '${MAGIC}'). Nothing was written to it: point fileLog at another path.`,
			)
		}
		const version = data.readUInt32LE(8)
		if (version < 1) {
			throw new StorageForeignError(
				`${path} starts like a spool file log but names no known format (${version}). Nothing was written to it: point fileLog at another path.`,
			)
		}
		if (version > FORMAT_VERSION) {
			throw new StorageForeignError(
				`${path} was written by a newer spool (file log format ${version}; this version reads up to ${FORMAT_VERSION}). Nothing was written to it: upgrade spool to open it.`,
			)
		}
		const { end, records, snapshot } = this.replay(data)
		const truncatedAt = end < data.length ? end : null
		this.fd = openSync(path, 'r+')
		if (truncatedAt !== null) {
			this.settings.logger.warn(
				{ path, offset: truncatedAt, bytes: data.length - truncatedAt },
				`The file log ended with an incomplete or damaged frame at byte ${truncatedAt} (a write cut short by a crash); cut it off there, keeping every whole frame before it.`,
			)
			ftruncateSync(this.fd, truncatedAt)
			fsyncSync(this.fd)
		}
		this.size = end
		// How much of the log is garbage is unknown until a snapshot is written: a log already past
		// the bound is compacted at its first write; from then on when it has grown by the bound
		// (or by half the snapshot, if more, so a big live state is not rewritten too often).
		this.compactBelow = this.settings.compactAt
		this.report = {
			bytes: end,
			records,
			jobs: this.mem.rows.size + (this.mem.archive?.size ?? 0),
			truncatedAt,
			snapshot,
		}
	}

	/** Applies every whole frame; returns where the valid log ends. */
	private replay(data: Buffer): { end: number; records: number; snapshot: boolean } {
		const mem = this.mem
		const replayer = new Replayer(mem)
		mem.deferQueues = true
		let pos = HEADER_SIZE
		let first = true
		while (pos < data.length) {
			const bad = this.frameAt(data, pos)
			if (bad !== null) {
				const next = findFrame(data, pos + 1)
				if (next !== -1) {
					throw new StorageCorruptError(
						`The file log ${this.settings.path} is damaged at byte ${pos} (${bad}), and whole frames follow at byte ${next}, so this is not a write cut short by a crash. Nothing was changed: the file is left as it is for inspection. Restore it from a backup, or move it away to start afresh.`,
					)
				}
				break
			}
			const len = data.readUInt32LE(pos)
			replayer.apply(Reader.of(data, pos + FRAME_HEADER, pos + FRAME_HEADER + len, 0), first)
			first = false
			pos += FRAME_HEADER + len
		}
		replayer.finish(mem.seq)
		mem.rebuildQueues()
		// The process that held these leases is gone: let the reaper take the jobs back at once.
		for (const row of mem.activeRows()) row.leaseExpiresAt = 0
		return { end: pos, records: replayer.records, snapshot: replayer.snapshotSeen }
	}

	/** Why the frame at `pos` is not whole, or null if it is. */
	private frameAt(data: Buffer, pos: number): string | null {
		if (pos + FRAME_HEADER > data.length) return 'a frame header cut short'
		const len = data.readUInt32LE(pos)
		if (len === 0 || len > MAX_FRAME) return `an impossible frame length ${len}`
		if (pos + FRAME_HEADER + len > data.length) return 'a frame cut short'
		if (crc32(data, pos + FRAME_HEADER, pos + FRAME_HEADER + len) !== data.readUInt32LE(pos + 4)) {
			return 'a frame whose checksum does not match'
		}
		return null
	}

	// ---- the journal: encode each change into the next group ----------------------------------

	private begin(): Writer {
		if (!this.flushScheduled) {
			this.flushScheduled = true
			queueMicrotask(this.flushTask)
		}
		return this.w
	}

	created(row: Row): void {
		encode.created(this.begin(), row)
	}
	claimed(rows: readonly Row[], now: number): void {
		encode.claimed(this.begin(), rows, now)
	}
	settled(row: Row, outcome: Outcome, now: number): void {
		encode.settled(this.begin(), row, outcome, now)
	}
	reaped(row: Row, now: number): void {
		encode.simple(this.begin(), Rec.Reaped, row, now)
	}
	woken(row: Row, now: number): void {
		encode.simple(this.begin(), Rec.Woken, row, now)
	}
	cancelled(row: Row, now: number): void {
		encode.simple(this.begin(), Rec.Cancelled, row, now)
	}
	replayed(row: Row, now: number): void {
		encode.simple(this.begin(), Rec.Replayed, row, now)
	}
	removed(row: Row): void {
		encode.removed(this.begin(), row)
	}
	logged(row: Row, lines: readonly string[]): void {
		encode.logged(this.begin(), row, lines)
	}
	stepSaved(row: Row, step: StepRow): void {
		encode.step(this.begin(), row, step)
	}
	meta(key: string, value: unknown): void {
		encode.meta(this.begin(), key, value)
	}
	debounced(row: Row, now: number): void {
		encode.debounced(this.begin(), row, now)
	}
	waiterAdded(waiter: WaiterRow): void {
		encode.waiter(this.begin(), waiter)
	}
	waiterTrimmed(id: string, drop: number | 'all'): void {
		encode.waiterTrim(this.begin(), id, drop)
	}
	published(event: PublishedEvent, now: number): void {
		encode.published(this.begin(), event, now)
	}

	// ---- group commit --------------------------------------------------------------------------

	/** Throws if the log failed or is closed. Call before changing anything. */
	check(): void {
		if (this.failed) throw this.failed
		if (this.closed || this.fd < 0) {
			throw new StorageUnavailableError(`The file log ${this.settings.path} is closed.`)
		}
	}

	/** Resolves when every change made so far is as durable as the durability mode makes it. */
	commit(): Promise<void> {
		if (this.failed) return Promise.reject(this.failed)
		const compacting = this.compacting
		if (this.w.pos > (compacting ? compacting.end : FRAME_HEADER)) {
			this.current ??= newGroup()
			return this.current.promise
		}
		if (compacting) return compacting.group.promise
		const last = this.inflight[this.inflight.length - 1]
		return last ? last.promise : RESOLVED
	}

	private flush(): void {
		this.flushScheduled = false
		const w = this.w
		if (this.failed || this.compacting || w.pos === FRAME_HEADER || this.fd < 0) return
		const fsyncMode = this.settings.durability === 'fsync'
		if (fsyncMode && this.inflight.length >= this.settings.pipeline) return // a sync's end flushes
		if (this.size > this.compactBelow) {
			if (this.inflight.length > 0) return
			this.compact()
			return
		}
		const group = this.current ?? newGroup()
		this.current = null
		w.u32At(0, w.pos - FRAME_HEADER)
		w.u32At(4, crc32(w.buf, FRAME_HEADER, w.pos))
		try {
			writeAll(this.fd, w.buf, 0, w.pos, this.size)
		} catch (err) {
			this.current = group
			this.fail(err)
			return
		}
		this.size += w.pos
		w.pos = FRAME_HEADER
		if (fsyncMode) {
			this.inflight.push(group)
			fdatasync(this.fd, (err) => this.synced(group, err))
		} else {
			this.dirty = true
			group.synced = true
			group.resolve()
		}
	}

	private synced(group: Group, err: Error | null): void {
		if (err) {
			this.fail(err)
			return
		}
		group.synced = true
		const q = this.inflight
		while (q.length > 0 && q[0]!.synced) q.shift()!.resolve()
		if (this.w.pos > FRAME_HEADER) this.flush()
	}

	private periodicSync(): void {
		if (!this.dirty || this.syncing || this.fd < 0 || this.failed) return
		this.dirty = false
		this.syncing = true
		fdatasync(this.fd, (err) => {
			this.syncing = false
			if (err) this.fail(err)
		})
	}

	private fail(err: unknown): void {
		if (this.failed) return
		const message = err instanceof Error ? err.message : String(err)
		this.failed = new StorageUnavailableError(
			`The file log ${this.settings.path} could not be written (${message}). Its state in memory may now be ahead of the disk, so it refuses further changes: close it and open it again, which replays what reached the disk.`,
			{ cause: err },
		)
		for (const g of this.inflight.splice(0)) g.reject(this.failed)
		this.current?.reject(this.failed)
		this.current = null
		this.compacting?.group.reject(this.failed)
	}

	// ---- compaction ----------------------------------------------------------------------------

	/** Bytes in the log file now. */
	get bytes(): number {
		return this.size
	}

	/**
	 * Writes the live state as a snapshot to a new file and swaps it in atomically (write, fsync,
	 * rename, fsync the directory). The pending group's changes are part of the snapshot; changes
	 * made meanwhile wait and go to the new file. A crash at any point leaves a whole log at the
	 * path: the old one until the rename, the new one after.
	 */
	private compact(): void {
		const { path } = this.settings
		const tmp = `${path}.compact`
		const group = this.current ?? newGroup()
		this.current = null
		const groupEnd = this.w.pos
		this.compacting = { group, end: groupEnd }
		let fd2 = -1
		let snapshotSize = 0
		try {
			fd2 = openSync(tmp, 'w')
			snapshotSize = this.writeSnapshot(fd2)
		} catch (err) {
			this.abandonCompaction(fd2, tmp, group, err)
			return
		}
		fsync(fd2, (err) => {
			if (err) {
				this.abandonCompaction(fd2, tmp, group, err)
				return
			}
			if (this.closed) {
				closeSync(fd2)
				unlinkSync(tmp)
				this.compacting = null
				group.reject(new StorageUnavailableError(`The file log ${path} was closed while compacting.`))
				return
			}
			try {
				renameSync(tmp, path)
			} catch (rerr) {
				this.abandonCompaction(fd2, tmp, group, rerr)
				return
			}
			// From here the new file is the log.
			const old = this.fd
			this.fd = fd2
			this.size = snapshotSize
			this.compactBelow = snapshotSize + Math.max(this.settings.compactAt, snapshotSize / 2)
			this.compactions++
			try {
				closeSync(old)
				fsyncDir(path)
			} catch (derr) {
				this.compacting = null
				this.fail(derr)
				return
			}
			// The group's records are in the snapshot: drop them, keep those written since.
			const w = this.w
			w.buf.copyWithin(FRAME_HEADER, groupEnd, w.pos)
			w.pos = FRAME_HEADER + (w.pos - groupEnd)
			this.compacting = null
			group.synced = true
			group.resolve()
			if (w.pos > FRAME_HEADER) this.flush()
			else if (this.current) {
				this.current.resolve()
				this.current = null
			}
		})
	}

	private abandonCompaction(fd2: number, tmp: string, group: Group, err: unknown): void {
		try {
			if (fd2 >= 0) closeSync(fd2)
			unlinkSync(tmp)
		} catch {}
		this.settings.logger.warn(
			{ path: this.settings.path, error: err instanceof Error ? err.message : String(err) },
			'Could not compact the file log; it keeps growing and compaction is tried again later.',
		)
		this.compactBelow = this.size * 2
		this.compacting = null
		// The group is still in the buffer, with any records made since: write them all to the
		// old log as usual, as one group.
		const later = this.current
		this.current = group
		if (later) group.promise.then(later.resolve, later.reject)
		this.flush()
	}

	/** Writes header + snapshot frames to `fd`; returns the bytes written. */
	private writeSnapshot(fd: number): number {
		const w = new Writer(SNAPSHOT_FRAME * 2)
		let size = 0
		const h = header()
		writeAll(fd, h, 0, HEADER_SIZE, 0)
		size = HEADER_SIZE
		const out = () => {
			w.u32At(0, w.pos - FRAME_HEADER)
			w.u32At(4, crc32(w.buf, FRAME_HEADER, w.pos))
			writeAll(fd, w.buf, 0, w.pos, size)
			size += w.pos
			w.pos = FRAME_HEADER
		}
		w.pos = FRAME_HEADER
		const archive = this.mem.archive
		encode.snapshot(w, this.mem.seq, this.mem.rows.size + (archive?.size ?? 0))
		// Rows and archived jobs, merged in seq order (the order a replay restores them in).
		let i = 0
		const archived = (below: number) => {
			if (archive === null) return
			for (; i < archive.slots && archive.seqAt(i) < below; i++) {
				if (archive.removed(i)) continue
				encodeArchived(w, archive, i)
				if (w.pos >= SNAPSHOT_FRAME) out()
			}
		}
		for (const row of this.mem.rows.values()) {
			archived(row.seq)
			encode.row(w, row)
			if (w.pos >= SNAPSHOT_FRAME) out()
		}
		archived(Number.POSITIVE_INFINITY)
		for (const [key, value] of this.mem.meta) {
			encode.meta(w, key, value)
			if (w.pos >= SNAPSHOT_FRAME) out()
		}
		for (const waiter of this.mem.waiterRows()) {
			encode.waiter(w, waiter)
			if (w.pos >= SNAPSHOT_FRAME) out()
		}
		if (w.pos > FRAME_HEADER) out()
		return size
	}

	// ---- closing -------------------------------------------------------------------------------

	/** Writes what is pending, syncs, closes the file and releases the lock. */
	async close(): Promise<void> {
		if (this.closed) return
		this.mem.journal = null
		// Wait for the groups in flight and any compaction, then write the rest.
		while (
			!this.failed &&
			this.fd >= 0 &&
			(this.compacting || this.w.pos > FRAME_HEADER || this.inflight.length > 0)
		) {
			if (!this.compacting && this.w.pos > FRAME_HEADER) this.flush()
			await (this.compacting ? new Promise((r) => setTimeout(r, 1)) : this.commit().catch(() => {}))
		}
		this.closed = true
		if (this.timer) clearInterval(this.timer)
		this.timer = null
		if (this.fd >= 0) {
			try {
				if (!this.failed) fsyncSync(this.fd)
			} finally {
				closeSync(this.fd)
				this.fd = -1
				releaseLock(this.lockPath)
			}
		}
	}

	/** The file's size on disk (tests). */
	fileSize(): number {
		return this.fd >= 0 ? fstatSync(this.fd).size : 0
	}
}

/** The offset of the first whole frame at or after `from`, or -1. */
function findFrame(data: Buffer, from: number): number {
	for (let p = from; p + FRAME_HEADER < data.length; p++) {
		const len = data.readUInt32LE(p)
		if (len === 0 || len > data.length - p - FRAME_HEADER) continue
		const type = data[p + FRAME_HEADER]!
		if (Rec[type] === undefined) continue // not a record type: no frame starts here
		if (crc32(data, p + FRAME_HEADER, p + FRAME_HEADER + len) === data.readUInt32LE(p + 4)) return p
	}
	return -1
}
