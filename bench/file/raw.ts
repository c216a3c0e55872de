/**
 * The baseline: the file log's own binary records (a claim and a completion per job), appended by
 * `concurrency` loops to one file with the same group commit (one write and one fdatasync per
 * group, up to `pipeline` groups syncing at once) and nothing else: no queue, no worker, no state.
 * It is what the file log could do if the rest of spool cost nothing.
 */
import { closeSync, fdatasync, openSync, writeSync } from 'node:fs'
import type { JsonText } from '../../src/json.js'
import { Writer } from '../../src/storage/file/codec.js'
import { crc32 } from '../../src/storage/file/crc32.js'
import { encode } from '../../src/storage/file/records.js'
import type { Row } from '../../src/storage/row.js'
import { rate } from '../core/util.js'

function fakeRow(seq: number): Row {
	// Only what encoding a claim and a completion reads.
	return {
		seq,
		leaseOwner: 'host:1234:abcdef',
		leaseToken: 'AAAAAAAAAAAAAAAA',
		leaseExpiresAt: Date.now() + 30_000,
	} as unknown as Row
}

/** Processes `jobs` no-op "jobs" at `concurrency`; returns jobs/s. */
export async function rawProcess(
	path: string,
	jobs: number,
	concurrency: number,
	durability: 'fsync' | 'none',
	pipeline = 2,
): Promise<number> {
	const fd = openSync(path, 'w')
	const w = new Writer()
	w.pos = 8
	let size = 0
	let waiters: (() => void)[] = []
	const inflight: { done: boolean; waiters: (() => void)[] }[] = []
	let scheduled = false
	const output = 'null' as JsonText

	const flush = () => {
		scheduled = false
		if (w.pos === 8 || inflight.length >= pipeline) return
		w.u32At(0, w.pos - 8)
		w.u32At(4, crc32(w.buf, 8, w.pos))
		writeSync(fd, w.buf, 0, w.pos, size)
		size += w.pos
		w.pos = 8
		const group = { done: false, waiters }
		waiters = []
		if (durability === 'none') {
			for (const r of group.waiters) r()
			return
		}
		inflight.push(group)
		fdatasync(fd, () => {
			group.done = true
			while (inflight[0]?.done) for (const r of inflight.shift()!.waiters) r()
			if (w.pos > 8) flush()
		})
	}
	const commit = () =>
		new Promise<void>((resolve) => {
			waiters.push(resolve)
			if (!scheduled) {
				scheduled = true
				queueMicrotask(flush)
			}
		})

	let next = 0
	const t0 = performance.now()
	await Promise.all(
		Array.from({ length: concurrency }, async () => {
			while (next < jobs) {
				const row = fakeRow(next++)
				const now = Date.now()
				encode.claimed(w, [row], now)
				encode.settled(w, row, { kind: 'completed', id: '', token: '', output }, now)
				await commit()
			}
		}),
	)
	const ms = performance.now() - t0
	closeSync(fd)
	return rate(jobs, ms)
}
