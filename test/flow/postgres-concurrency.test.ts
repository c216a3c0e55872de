/**
 * Issue 5, item 9: on PostgreSQL, a per-key limit of 1 holds across 4 worker processes. Each run
 * records its start and end; runs of one key must never overlap, while runs of different keys do
 * (so the processes really ran in parallel and the check could fail).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { createQueue, silentLogger } from '../../src/index.js'
import { migrate, postgres } from '../../src/storage/postgres/index.js'
import { exited, printed, startChild, until } from '../helpers/child.js'
import { adminPool, DATABASE_URL, freshSchema } from '../postgres/helpers.js'
import { keyedJob } from './fixtures/keyed-job.js'

const WORKER = join(import.meta.dirname, 'fixtures', 'keyed-worker.ts')
const admin = adminPool()
afterAll(() => admin.end())

it('a per-key limit of 1 is never exceeded across 4 processes', async () => {
	const dir = mkdtempSync(join(tmpdir(), 'spool-flow-pg-'))
	const schema = freshSchema('flowmp')
	await migrate({ pool: admin, schema })
	// The producer registers the definition: flow options are applied where a job is enqueued.
	const producer = createQueue({
		jobs: { sync: keyedJob(null) },
		storage: postgres({ connectionString: DATABASE_URL, schema, poolSize: 2 }),
		worker: false,
		logger: silentLogger,
	})
	const children = Array.from({ length: 4 }, () => startChild(WORKER, [schema, dir]))
	try {
		await Promise.all(children.map((c) => printed(c, 'ready')))
		const users = Array.from({ length: 16 }, (_, i) => `u${i}`)
		const perUser = 10
		// Interleaved, so every claim batch holds several jobs of each key.
		await producer.enqueueMany(
			Array.from({ length: perUser * users.length }, (_, i) => ({
				name: 'sync' as const,
				input: { user: users[i % users.length]!, n: i },
			})),
		)
		const total = perUser * users.length
		await until(async () => (await producer.getStats()).total.completed === total, 60_000, 'all jobs')

		const runs: { user: string; start: number; end: number; pid: string }[] = []
		for (const f of readdirSync(dir).filter((f) => f.startsWith('intervals-'))) {
			for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
				if (!line) continue
				const [user, start, end, pid] = line.split(' ')
				runs.push({ user: user!, start: Number(start), end: Number(end), pid: pid! })
			}
		}
		expect(runs).toHaveLength(total)
		for (const user of users) {
			const mine = runs.filter((r) => r.user === user).sort((x, y) => x.start - y.start)
			for (let i = 1; i < mine.length; i++) {
				if (mine[i]!.start < mine[i - 1]!.end) {
					throw new Error(`two runs of user ${user} overlapped: ${JSON.stringify([mine[i - 1], mine[i]])}`)
				}
			}
		}
		// Several processes took part, so the limit was held between processes, not inside one. (One
		// key's runs may well stay in one process: a worker that settles a run claims the next at once.)
		expect(new Set(runs.map((r) => r.pid)).size).toBeGreaterThan(1)
		// Different keys did run at the same time: the limit is per key, not global.
		const sorted = [...runs].sort((x, y) => x.start - y.start)
		let parallel = 0
		for (let i = 1; i < sorted.length; i++) if (sorted[i]!.start < sorted[i - 1]!.end) parallel++
		expect(parallel).toBeGreaterThan(0)
	} finally {
		for (const c of children) {
			c.kill('SIGKILL')
			await exited(c)
		}
		await producer.close()
		await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
		rmSync(dir, { recursive: true, force: true })
	}
}, 90_000)
