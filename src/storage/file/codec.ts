/**
 * The byte layout of the file log's records: a growable writer and a bounds-checked reader of
 * small integers (zig-zag varints, with a float64 escape for anything that is not one), strings
 * (varint byte length + UTF-8) and nullable strings (length + 1, 0 for null).
 */
import { StorageCorruptError } from '../../errors.js'

/** Buffer's UTF-8 fast paths (present on every Buffer, missing from @types/node). */
export type FastBuffer = Buffer & {
	utf8Write(s: string, offset: number, length?: number): number
	utf8Slice(start: number, end: number): string
}

const TWO_32 = 2 ** 32
/** Integers up to this magnitude take the varint path; anything else is stored as a float64. */
const MAX_VARINT = 2 ** 51

/** Appends encoded values to a buffer that grows as needed. */
export class Writer {
	buf: FastBuffer
	pos = 0
	private view: DataView

	constructor(size = 64 * 1024) {
		this.buf = Buffer.allocUnsafe(size) as FastBuffer
		this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
	}

	/** Makes room for `n` more bytes. */
	ensure(n: number): void {
		if (this.pos + n <= this.buf.length) return
		let size = this.buf.length * 2
		while (size < this.pos + n) size *= 2
		const next = Buffer.allocUnsafe(size) as FastBuffer
		this.buf.copy(next, 0, 0, this.pos)
		this.buf = next
		this.view = new DataView(next.buffer, next.byteOffset, next.byteLength)
	}

	u8(v: number): void {
		this.ensure(1)
		this.buf[this.pos++] = v
	}

	u32At(at: number, v: number): void {
		this.view.setUint32(at, v, true)
	}

	/** A non-negative integer below 2^53. */
	uint(v: number): void {
		this.ensure(8)
		const b = this.buf
		let p = this.pos
		while (v >= 0x80) {
			b[p++] = (v % 0x80) | 0x80
			v = Math.floor(v / 0x80)
		}
		b[p++] = v
		this.pos = p
	}

	/** Any number: integers as zig-zag varints (even), anything else as a float64 (odd marker). */
	num(v: number): void {
		if (Number.isInteger(v) && v < MAX_VARINT && v > -MAX_VARINT) {
			this.uint(v >= 0 ? v * 4 : -v * 4 - 2)
		} else {
			this.uint(1)
			this.ensure(8)
			this.view.setFloat64(this.pos, v, true)
			this.pos += 8
		}
	}

	str(s: string): void {
		const n = s.length
		if (n < 42) {
			// At most 126 bytes of UTF-8: the length fits one varint byte.
			this.ensure(1 + n * 3)
			const len = this.buf.utf8Write(s, this.pos + 1)
			this.buf[this.pos] = len
			this.pos += 1 + len
		} else {
			const len = Buffer.byteLength(s)
			this.uint(len)
			this.ensure(len)
			this.buf.utf8Write(s, this.pos, len)
			this.pos += len
		}
	}

	/** A string given as its UTF-8 bytes `src[start, end)`. */
	raw(src: Uint8Array, start: number, end: number, nullable = false): void {
		const n = end - start
		this.uint(nullable ? n + 1 : n)
		this.ensure(n)
		const b = this.buf
		let p = this.pos
		for (let i = start; i < end; i++) b[p++] = src[i]!
		this.pos = p
	}

	/** A string or null. */
	nstr(s: string | null): void {
		if (s === null) {
			this.u8(0)
			return
		}
		const n = s.length
		if (n < 42) {
			this.ensure(1 + n * 3)
			const len = this.buf.utf8Write(s, this.pos + 1)
			this.buf[this.pos] = len + 1
			this.pos += 1 + len
		} else {
			const len = Buffer.byteLength(s)
			this.uint(len + 1)
			this.ensure(len)
			this.buf.utf8Write(s, this.pos, len)
			this.pos += len
		}
	}
}

/** Reads values written by `Writer`; every read past the end throws `StorageCorruptError`. */
export class Reader {
	pos: number
	private readonly view: DataView

	/** A reader of `buf[start, end)`. */
	static of(buf: Buffer, start: number, end: number, fileOffset: number): Reader {
		return new Reader(buf as FastBuffer, start, end, fileOffset)
	}

	constructor(
		readonly buf: FastBuffer,
		start: number,
		readonly end: number,
		/** The byte offset of `buf[0]` in the file, for error messages. */
		readonly fileOffset: number,
	) {
		this.pos = start
		this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
	}

	get done(): boolean {
		return this.pos >= this.end
	}

	fail(what: string): never {
		throw new StorageCorruptError(
			`The file log has a record that cannot be read at byte ${this.fileOffset + this.pos} (${what}), although its checksum is right. The file was left as it is.`,
		)
	}

	u8(): number {
		if (this.pos >= this.end) this.fail('truncated')
		return this.buf[this.pos++]!
	}

	uint(): number {
		const b = this.buf
		let p = this.pos
		let byte = p < this.end ? b[p++]! : this.fail('truncated')
		if (byte < 0x80) {
			this.pos = p
			return byte
		}
		let v = byte & 0x7f
		let mul = 0x80
		for (;;) {
			if (p >= this.end) this.fail('truncated')
			byte = b[p++]!
			v += (byte & 0x7f) * mul
			if (byte < 0x80) break
			mul *= 0x80
			if (mul > TWO_32 * TWO_32) this.fail('varint too long')
		}
		this.pos = p
		return v
	}

	num(): number {
		const z = this.uint()
		if (z % 2 === 0) return z % 4 === 0 ? z / 4 : -(z + 2) / 4
		if (z !== 1) this.fail('bad number')
		if (this.pos + 8 > this.end) this.fail('truncated')
		const v = this.view.getFloat64(this.pos, true)
		this.pos += 8
		return v
	}

	str(): string {
		const len = this.uint()
		const start = this.pos
		const end = start + len
		if (end > this.end) this.fail('truncated string')
		this.pos = end
		return this.buf.utf8Slice(start, end)
	}

	/** Skips a number written by `Writer.num`. */
	skipNum(): void {
		const b = this.buf
		let p = this.pos
		if (p >= this.end) this.fail('truncated')
		if (b[p] === 1) {
			if (p + 9 > this.end) this.fail('truncated')
			this.pos = p + 9
			return
		}
		while (p < this.end && b[p]! >= 0x80) p++
		if (p >= this.end) this.fail('truncated')
		this.pos = p + 1
	}

	/** Skips a string; returns where its bytes start (they end at `pos`). */
	span(): number {
		const len = this.uint()
		const start = this.pos
		const end = start + len
		if (end > this.end) this.fail('truncated string')
		this.pos = end
		return start
	}

	/** Skips a string or null; returns where its bytes start, or -1 for null. */
	nspan(): number {
		const n = this.uint()
		if (n === 0) return -1
		const start = this.pos
		const end = start + n - 1
		if (end > this.end) this.fail('truncated string')
		this.pos = end
		return start
	}

	nstr(): string | null {
		const n = this.uint()
		if (n === 0) return null
		const start = this.pos
		const end = start + n - 1
		if (end > this.end) this.fail('truncated string')
		this.pos = end
		return this.buf.utf8Slice(start, end)
	}
}
