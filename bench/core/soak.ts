/**
 * The memory soak, run in its own process (`--expose-gc`): a worker on the memory storage processes
 * a million no-op jobs (completed jobs removed at once, retention 0) while a producer keeps a
 * bounded backlog. It reports RSS and heap after a warm-up and after the million, both after a full
 * GC, and the size of every per-job structure in the queue, the worker and the storage once all has
 * settled: a completed job must leave nothing behind. Prints one JSON line.
 */
import { createJob, createQueue, silentLogger } from '../../src/index.js'
import { memory } from '../../src/storage/memory.js'

const jobs = Number(process.argv[2] ?? 1_000_000)
const warmupJobs = Math.min(50_000, Math.ceil(jobs / 10))

const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with --expose-gc')

function settleGc(): { rss: number; heapUsed: number } {
	for (let i = 0; i < 3; i++) gc!()
	const m = process.memoryUsage()
	return { rss: m.rss, heapUsed: m.heapUsed }
}

const noop = createJob({ name: 'noop', retention: { completed: 0 } }, async (_input: { i: number }) => {})
const storage = memory()
const queue = createQueue({ jobs: { noop }, storage, concurrency: 50, logger: silentLogger })
await queue.ready

let completed = 0
let target = 0
let reached: () => void = () => {}
queue.on('completed', () => {
	if (++completed === target) reached()
})

/** Feeds `n` jobs in batches, keeping at most ~20k waiting, and resolves when all completed. */
async function feed(n: number): Promise<void> {
	target = completed + n
	const done = new Promise<void>((resolve) => {
		reached = resolve
	})
	let sent = 0
	while (sent < n) {
		if (sent - (completed - (target - n)) > 20_000) {
			await new Promise((r) => setImmediate(r))
			continue
		}
		const batch = Math.min(5000, n - sent)
		await queue.jobs.noop.startMany(Array.from({ length: batch }, (_, i) => ({ input: { i } })))
		sent += batch
	}
	await done
	await queue.drain()
}

await feed(warmupJobs)
const before = settleGc()
const t0 = performance.now()
await feed(jobs)
const ms = performance.now() - t0
const after = settleGc()

// The per-job structures, read from the inside (bench only: these are private fields).
type Sized = { size: number }
const q = queue as unknown as {
	waiters: Sized
	worker: {
		running: number
		liveCount: number
		liveHead: unknown
		adopted: Sized
		buffered: unknown[]
		completer: { outcomes: unknown[]; targets: unknown[]; logs: Sized }
	}
}
const s = storage as unknown as {
	rows: Sized
	idempotency: Sized
	dedupe: Sized
	active: Sized
	waiting: Sized
	waitersByTopic: Sized
	queues: Map<string, { ready: Sized; delayed: Sized }>
}
let heapEntries = 0
for (const nq of s.queues.values()) heapEntries += nq.ready.size + nq.delayed.size
const leftovers = {
	'queue.waiters': q.waiters.size,
	'worker.running': q.worker.running,
	'worker.live': q.worker.liveCount + (q.worker.liveHead === null ? 0 : 1),
	'worker.adopted': q.worker.adopted.size,
	'worker.buffered': q.worker.buffered.length,
	'completer.outcomes': q.worker.completer.outcomes.length,
	'completer.targets': q.worker.completer.targets.length,
	'completer.logs': q.worker.completer.logs.size,
	'memory.rows': s.rows.size,
	'memory.idempotency': s.idempotency.size,
	'memory.dedupe': s.dedupe.size,
	'memory.active': s.active.size,
	'memory.waiting': s.waiting.size,
	'memory.waitersByTopic': s.waitersByTopic.size,
	'memory.heapEntries': heapEntries,
}
await queue.close()
process.stdout.write(
	`${JSON.stringify({
		jobs,
		warmupJobs,
		jobsPerSec: (jobs * 1000) / ms,
		rssBefore: before.rss,
		rssAfter: after.rss,
		heapBefore: before.heapUsed,
		heapAfter: after.heapUsed,
		leftovers,
	})}\n`,
)
