/**
 * spool itself, through its public API: enqueue throughput (one at a time, in bulk), processing
 * throughput of no-op jobs at a given concurrency, and enqueue-to-start latency in one process.
 */
import { createJob, createQueue, silentLogger } from '../../src/index.js'
import type { Storage } from '../../src/storage/contract.js'
import { memory } from '../../src/storage/memory.js'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { gc, percentile, rate } from './util.js'

/** A storage under test: makes a fresh storage, or reopens the same place (same file, same memory). */
export interface StorageKind {
	readonly name: string
	/** A new place (empty). */
	fresh(): StorageHandle
}

/** One place: `open()` gives a Storage over it, as many times as asked. */
export interface StorageHandle {
	open(): Storage
}

/** Memory: one storage object shared by the producer and the worker (its close keeps the data). */
export const memoryKind: StorageKind = {
	name: 'memory',
	fresh() {
		const storage = memory()
		return { open: () => storage }
	},
}

/** SQLite files in `dir`, with the given durability. */
export function sqliteKind(
	name: string,
	path: (file: string) => string,
	synchronous: 'full' | 'normal' = 'full',
): StorageKind {
	let n = 0
	return {
		name,
		fresh() {
			const file = path(`${name.replace(/\W+/g, '-')}-${n++}.db`)
			return { open: () => sqlite({ path: file, synchronous }) }
		},
	}
}

const noop = createJob({ name: 'noop' }, async (_input: { i: number }) => {})

/** Enqueues `jobs` jobs one `await` at a time (sequential: one commit, one fsync each), from a producer-only queue. */
export async function enqueueOne(kind: StorageKind, jobs: number): Promise<number> {
	const queue = createQueue({
		jobs: { noop },
		storage: kind.fresh().open(),
		worker: false,
		logger: silentLogger,
	})
	await queue.ready
	for (let i = 0; i < 200; i++) await queue.jobs.noop.start({ i })
	const t0 = performance.now()
	for (let i = 0; i < jobs; i++) await queue.jobs.noop.start({ i })
	const ms = performance.now() - t0
	await queue.close()
	return rate(jobs, ms)
}

/**
 * Enqueues `jobs` jobs with individual `start()` calls, `inFlight` of them at once (as concurrent
 * requests of a web server would): `inFlight` loops, each awaiting its own calls one at a time.
 * Calls made together may share a commit (SQLite's group commit); each
 * still resolves only after its job is committed.
 */
export async function enqueueConcurrent(kind: StorageKind, jobs: number, inFlight: number): Promise<number> {
	const queue = createQueue({
		jobs: { noop },
		storage: kind.fresh().open(),
		worker: false,
		logger: silentLogger,
	})
	await queue.ready
	for (let i = 0; i < 200; i++) await queue.jobs.noop.start({ i })
	let next = 0
	const loop = async () => {
		while (next < jobs) await queue.jobs.noop.start({ i: next++ })
	}
	const t0 = performance.now()
	await Promise.all(Array.from({ length: inFlight }, loop))
	const ms = performance.now() - t0
	await queue.close()
	return rate(jobs, ms)
}

/** Enqueues `jobs` jobs with startMany, `batch` per call. */
export async function enqueueBulk(kind: StorageKind, jobs: number, batch: number): Promise<number> {
	const queue = createQueue({
		jobs: { noop },
		storage: kind.fresh().open(),
		worker: false,
		logger: silentLogger,
	})
	await queue.ready
	const t0 = performance.now()
	for (let done = 0; done < jobs; done += batch) {
		const items = Array.from({ length: Math.min(batch, jobs - done) }, (_, i) => ({ input: { i } }))
		await queue.jobs.noop.startMany(items)
	}
	const ms = performance.now() - t0
	await queue.close()
	return rate(jobs, ms)
}

async function fill(place: StorageHandle, jobs: number): Promise<void> {
	const producer = createQueue({ jobs: { noop }, storage: place.open(), worker: false, logger: silentLogger })
	await producer.ready
	for (let done = 0; done < jobs; done += 5000) {
		const items = Array.from({ length: Math.min(5000, jobs - done) }, (_, i) => ({ input: { i } }))
		await producer.jobs.noop.startMany(items)
	}
	await producer.close()
}

/**
 * Processes `jobs` pending no-op jobs at `concurrency`: the time from creating the worker's queue
 * (its storage already open) to the last `completed` event. `prefetch`: the worker's `prefetch` (jobs claimed ahead of free
 * slots); absent, the worker's default (`'auto'`).
 */
export async function processJobs(
	kind: StorageKind,
	jobs: number,
	concurrency: number,
	prefetch?: number | 'auto',
): Promise<number> {
	const place = kind.fresh()
	await fill(place, jobs)
	gc()
	let done = 0
	let finish: () => void = () => {}
	const all = new Promise<void>((resolve) => {
		finish = resolve
	})
	// Start-up is not processing: open the storage first (a file log replays its log here, which
	// bench:file measures on its own), so the clock runs from the worker's start, as it does for
	// BullMQ (Redis holds its jobs already) and the raw loops (their jobs are already in place).
	const storage = place.open()
	await storage.open()
	const t0 = performance.now()
	const queue = createQueue({
		jobs: { noop },
		storage,
		concurrency,
		worker: prefetch === undefined ? {} : { prefetch },
		logger: silentLogger,
	})
	queue.on('completed', () => {
		if (++done === jobs) finish()
	})
	await all
	const ms = performance.now() - t0
	await queue.close()
	return rate(jobs, ms)
}

/**
 * Enqueue-to-start latency: one job at a time into an idle worker (concurrency 10), from the
 * `start` call to the first line of the handler. Returns the samples in ms.
 */
export async function latency(kind: StorageKind, samples: number): Promise<{ p50: number; p99: number }> {
	let started: (ms: number) => void = () => {}
	const probe = createJob({ name: 'probe' }, (input: { t0: number }) => {
		started(performance.now() - input.t0)
	})
	const queue = createQueue({ jobs: { probe }, storage: kind.fresh().open(), logger: silentLogger })
	await queue.ready
	const out: number[] = []
	const warmup = Math.min(200, samples)
	for (let i = 0; i < samples + warmup; i++) {
		const began = new Promise<number>((resolve) => {
			started = resolve
		})
		const settled = new Promise<void>((resolve) => queue.once('completed', () => resolve()))
		await queue.jobs.probe.start({ t0: performance.now() })
		const ms = await began
		await settled
		if (i >= warmup) out.push(ms)
	}
	await queue.close()
	return { p50: percentile(out, 50), p99: percentile(out, 99) }
}
