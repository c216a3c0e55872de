/**
 * CRC-32 (the zlib polynomial) of a byte range: node:zlib's native one where this Node has it
 * (20.15+), else a table-driven one in plain TypeScript.
 */
import * as zlib from 'node:zlib'

const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32

let table: Uint32Array | null = null

function makeTable(): Uint32Array {
	const t = new Uint32Array(256)
	for (let n = 0; n < 256; n++) {
		let c = n
		for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
		t[n] = c >>> 0
	}
	return t
}

/** The CRC-32 of `data[start, end)`. */
export function crc32(data: Uint8Array, start: number, end: number): number {
	if (native) return native(data.subarray(start, end)) >>> 0
	table ??= makeTable()
	let c = 0xffffffff
	for (let i = start; i < end; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8)
	return (c ^ 0xffffffff) >>> 0
}
