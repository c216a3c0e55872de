import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { createQueue, type Queue, silentLogger } from '../../src/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { exited, printed, startChild, until } from '../helpers/child.js'

const WORKER = join(import.meta.dirname, 'fixtures', 'worker.ts')
let dir: string
let db: string
let producer: Queue<{ work: { n: number } }>

function runCounts(): Map<string, number> {
	const counts = new Map<string, number>()
	for (const f of readdirSync(dir).filter((f) => f.startsWith('runs-'))) {
		for (const id of readFileSync(join(dir, f), 'utf8').split('\n')) {
			if (id) counts.set(id, (counts.get(id) ?? 0) + 1)
		}
	}
	return counts
}

beforeEach(async () => {
	dir = mkdtempSync(join(tmpdir(), 'spool-mp-'))
	db = join(dir, 'spool.db')
	producer = createQueue<{ work: { n: number } }>({
		storage: sqlite({ path: db }),
		worker: false,
		logger: silentLogger,
	})
	await producer.ready
})
afterEach(async () => {
	await producer.close()
	rmSync(dir, { recursive: true, force: true })
})

async function enqueueAll(n: number): Promise<string[]> {
	const ids: string[] = []
	for (let i = 0; i < n; i += 500) {
		const batch = Array.from({ length: Math.min(500, n - i) }, (_, k) => ({
			name: 'work' as const,
			input: { n: i + k },
		}))
		ids.push(...((await producer.enqueueMany(batch)) as string[]))
	}
	return ids
}

it('three processes on one SQLite file run every job exactly once', async () => {
	// Jobs of 5 ms (3000 take 1.5 s on one process alone): a process the loaded machine leaves
	// without CPU for a while still finds work to share.
	const children = [0, 1, 2].map(() => startChild(WORKER, [db, dir, '10', '30000', '5']))
	await Promise.all(children.map((c) => printed(c, 'ready')))
	// Enqueued once all three are up, so a process slow to start still finds work to share.
	const ids = await enqueueAll(3000)
	await until(
		async () => (await producer.getStats()).total.completed === ids.length,
		60_000,
		'all jobs completed',
	)
	for (const c of children) c.kill('SIGTERM')
	for (const c of children) expect((await exited(c)).code).toBe(0)
	const counts = runCounts()
	expect(counts.size).toBe(ids.length)
	expect([...counts.values()].every((n) => n === 1)).toBe(true)
	// Work was really shared.
	const perProcess = readdirSync(dir).filter((f) => f.startsWith('runs-'))
	expect(perProcess.length).toBe(3)
}, 90_000)

it('loses no job when worker processes are killed with SIGKILL at random moments', async () => {
	const ids = await enqueueAll(2000)
	for (let round = 0; round < 5; round++) {
		// 20 ms jobs at concurrency 10 (500 jobs/s at most): five kills of 50-350 ms each land mid-work
		// (with 5 ms jobs a fast machine finished all 2,000 before the last kill and the check below failed).
		const child = startChild(WORKER, [db, dir, '10', '500', '20'])
		await printed(child, 'ready')
		// Let it work for a random while, then kill it without warning.
		await new Promise((r) => setTimeout(r, 50 + Math.random() * 300))
		child.kill('SIGKILL')
		expect((await exited(child)).signal).toBe('SIGKILL')
	}
	const stats = await producer.getStats()
	expect(stats.total.completed).toBeLessThan(ids.length) // the kills did interrupt work
	const last = startChild(WORKER, [db, dir, '20', '500', '1'])
	await printed(last, 'ready')
	await until(
		async () => (await producer.getStats()).total.completed === ids.length,
		60_000,
		'all jobs completed',
	)
	last.kill('SIGTERM')
	await exited(last)
	const final = await producer.getStats()
	expect(final.total).toMatchObject({ completed: ids.length, pending: 0, active: 0, dead: 0 })
	const counts = runCounts()
	for (const id of ids) expect(counts.get(id) ?? 0).toBeGreaterThanOrEqual(1)
}, 120_000)
