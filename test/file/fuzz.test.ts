/**
 * Fuzzing the file log's recovery: copies of a real log (every record type, many frames, a
 * snapshot) are truncated, have bytes flipped, get garbage appended. Opening a copy either
 * recovers exactly the state of a prefix of whole frames, or refuses with a clear StorageError and
 * leaves the file as it was. It never crashes otherwise, hangs, or invents a job.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { SpoolError, StorageCorruptError, StorageForeignError } from '../../src/errors.js'
import { silentLogger } from '../../src/logger.js'
import type { Storage } from '../../src/storage/contract.js'
import { fileLog } from '../../src/storage/file/index.js'
import { claimParams, json, newJob, T0 } from '../conformance/harness.js'

let dir: string
let log: Buffer
/** Frame ends, in order: the state after each is a valid recovery. */
let ends: number[]
/** The state (as JSON) after each prefix of whole frames, by end offset. */
const states = new Map<number, string>()

/** A seeded random number generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
	let a = seed >>> 0
	return () => {
		a = (a + 0x6d2b79f5) >>> 0
		let t = a
		t = Math.imul(t ^ (t >>> 15), t | 1)
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296
	}
}

async function dump(s: Storage): Promise<string> {
	const { jobs } = await s.listJobs({ limit: 100_000 })
	const steps = await Promise.all(jobs.map((j) => s.getSteps({ jobId: j.id })))
	return JSON.stringify({ jobs, steps, stats: await s.getStats({}) })
}

let copies = 0
async function openCopy(bytes: Buffer): Promise<{ state: string } | { error: unknown; untouched: boolean }> {
	const path = join(dir, `copy-${copies++}.log`)
	writeFileSync(path, bytes)
	const s = fileLog({ path, logger: silentLogger })
	try {
		await s.open()
	} catch (error) {
		return { error, untouched: readFileSync(path).equals(bytes) }
	}
	try {
		return { state: await dump(s) }
	} finally {
		await s.close()
		rmSync(path, { force: true })
	}
}

/** The state of the longest prefix of whole frames that ends at or before `offset`. */
function prefixState(offset: number): string {
	let best = 16
	for (const e of ends) if (e <= offset) best = e
	return states.get(best)!
}

beforeAll(async () => {
	dir = mkdtempSync(join(tmpdir(), 'spool-file-fuzz-'))
	const path = join(dir, 'real.log')
	// Compacts early (the log then starts with a snapshot), and writes every record type.
	const s = fileLog({ path, compactAt: 2048, logger: silentLogger })
	await s.open()
	let now = T0
	const tick = () => {
		now += 100
		return now
	}
	await s.enqueue({ jobs: Array.from({ length: 30 }, () => newJob({ input: json('y'.repeat(60)) })), now })
	for (let round = 0; round < 6; round++) {
		const parent = newJob({ name: 'parent' })
		await s.enqueue({
			jobs: [
				parent,
				newJob({
					dedupeKey: `d${round}`,
					idempotencyKey: `i${round}`,
					priority: round % 3,
					backoff: json('1s'),
				}),
				newJob({ runAt: now + 1000 }),
			],
			now: tick(),
		})
		const [p] = await s.claim(claimParams({ names: ['parent'], now }))
		await s.saveStep({
			jobId: p!.id,
			token: p!.lease.token,
			stepId: 'run:a',
			name: 'a',
			state: 'completed',
			output: json({ r: round }),
			error: null,
			now,
		})
		await s.settle({
			outcomes: [{ kind: 'suspended', id: p!.id, token: p!.lease.token, wakeAt: null }],
			now: tick(),
		})
		await s.enqueue({ jobs: [newJob({ parentId: p!.id })], now })
		const claimed = await s.claim(claimParams({ limit: 6, now: tick() }))
		const [a, b, c, d, e, f] = claimed
		await s.settle({
			outcomes: [
				{ kind: 'completed', id: a!.id, token: a!.lease.token, output: json({ ok: round }) },
				{
					kind: 'retry',
					id: b!.id,
					token: b!.lease.token,
					runAt: now + 50,
					error: { attempt: 1, name: 'Error', message: 'flaky', stack: 'Error: flaky\n  at x', at: now },
				},
				{
					kind: 'dead',
					id: c!.id,
					token: c!.lease.token,
					error: { attempt: 1, name: 'TypeError', message: 'no', code: 'E_NO', at: now },
				},
				{ kind: 'released', id: d!.id, token: d!.lease.token },
				{ kind: 'completed', id: e!.id, token: e!.lease.token, output: json(null), remove: true },
			],
			logs: new Map([[a!.id, [`line ${round}`, 'ünïcode ✓']]]),
			now: tick(),
		})
		if (f) await s.cancel({ id: f.id, now })
		await s.wake({ ids: [p!.id], now: tick() })
		await s.replay({ ids: [c!.id], now: tick() })
		await s.claim(claimParams({ limit: 2, now: tick(), leaseMs: 10 }))
		await s.reap({ now: tick(), limit: 100 })
		await s.prune({ statuses: ['completed'], before: now - 200, limit: 2 })
		await s.claimOrEnqueue({
			job: { ...newJob({ dedupeKey: `coe${round}` }), dedupeKey: `coe${round}` },
			owner: 'web',
			leaseMs: 1000,
			now: tick(),
		})
	}
	expect(s.stats.compactions).toBeGreaterThan(0)
	await s.close()
	log = readFileSync(path)
	ends = []
	for (let pos = 16; pos < log.length; ) {
		pos += 8 + log.readUInt32LE(pos)
		ends.push(pos)
	}
	expect(ends.at(-1)).toBe(log.length)
	expect(ends.length).toBeGreaterThan(20)
	for (const end of [16, ...ends]) {
		const r = await openCopy(log.subarray(0, end))
		if (!('state' in r)) throw r.error
		states.set(end, r.state)
	}
}, 60_000)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

it('recovers the whole prefix of a log truncated anywhere', async () => {
	const random = rng(1)
	const cuts = new Set<number>([17, 20, 23, 24, 25, ...ends.map((e) => e - 1), ...ends.map((e) => e + 3)])
	for (let i = 0; i < 150; i++) cuts.add(16 + Math.floor(random() * (log.length - 16)))
	for (const cut of cuts) {
		if (cut >= log.length) continue
		const r = await openCopy(log.subarray(0, cut))
		expect('state' in r && r.state, `cut at ${cut}`).toBe(prefixState(cut))
	}
}, 60_000)

it('recovers a prefix or refuses clearly when bytes are flipped, never inventing a job', async () => {
	const random = rng(2)
	let refused = 0
	let recovered = 0
	for (let i = 0; i < 300; i++) {
		const bytes = Buffer.from(log)
		const flips = 1 + Math.floor(random() * 3)
		let first = bytes.length
		for (let k = 0; k < flips; k++) {
			// Mostly in the frames; now and then in the header.
			const at = random() < 0.05 ? Math.floor(random() * 16) : 16 + Math.floor(random() * (bytes.length - 16))
			bytes[at] = bytes[at]! ^ (1 + Math.floor(random() * 255))
			if (at >= 16) first = Math.min(first, at)
		}
		const r = await openCopy(bytes)
		if ('state' in r) {
			recovered++
			// Damage in the last frame only is taken for a torn tail: every whole frame before the
			// first flipped byte is kept (the header's reserved bytes 12-15 are not read).
			const same = r.state === prefixState(first)
			expect(same, `flips from ${first}`).toBe(true)
		} else {
			refused++
			expect(r.error).toBeInstanceOf(SpoolError)
			expect([StorageCorruptError, StorageForeignError].some((c) => r.error instanceof c)).toBe(true)
			expect(r.untouched).toBe(true)
		}
	}
	expect(refused).toBeGreaterThan(0)
	expect(recovered).toBeGreaterThan(0)
}, 60_000)

it('cuts off garbage or zeros after the last frame', async () => {
	const random = rng(3)
	for (let i = 0; i < 40; i++) {
		const tail = Buffer.alloc(1 + Math.floor(random() * 3000))
		if (i % 2) for (let k = 0; k < tail.length; k++) tail[k] = Math.floor(random() * 256)
		const r = await openCopy(Buffer.concat([log, tail]))
		expect('state' in r && r.state).toBe(states.get(log.length))
	}
}, 60_000)
