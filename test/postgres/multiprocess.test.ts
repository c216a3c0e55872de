/**
 * Many worker processes on one PostgreSQL schema, killed, paused and cut off for real. The shared
 * server is never restarted here (other suites use it): dropped connections are made with
 * pg_terminate_backend on the workers' own backends, found by their application_name.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest'
import { createQueue, type Queue, silentLogger } from '../../src/index.js'
import { migrate, postgres } from '../../src/storage/postgres/index.js'
import { exited, printed, startChild, until } from '../helpers/child.js'
import { adminPool, DATABASE_URL, freshSchema } from './helpers.js'

const WORKER = join(import.meta.dirname, 'fixtures', 'worker.ts')
const admin = adminPool()
afterAll(() => admin.end())

let dir: string
let schema: string
let producer: Queue<{ work: { n: number }; slow: null }>
const children: ReturnType<typeof startChild>[] = []

/** How many times each job ran, from the workers' run logs; and which process ran which. */
function runs(): { counts: Map<string, number>; byFile: Map<string, Set<string>> } {
	const counts = new Map<string, number>()
	const byFile = new Map<string, Set<string>>()
	for (const f of readdirSync(dir).filter((f) => f.startsWith('runs-'))) {
		const ids = new Set<string>()
		for (const id of readFileSync(join(dir, f), 'utf8').split('\n')) {
			if (!id) continue
			counts.set(id, (counts.get(id) ?? 0) + 1)
			ids.add(id)
		}
		byFile.set(f, ids)
	}
	return { counts, byFile }
}

function worker(args: string[], app = `spool_mp_${process.pid}`) {
	const child = startChild(WORKER, [schema, dir, ...args], { APP: app })
	children.push(child)
	return child
}

async function completed(): Promise<number> {
	return (await producer.getStats()).total.completed
}

beforeEach(async () => {
	dir = mkdtempSync(join(tmpdir(), 'spool-pg-mp-'))
	schema = freshSchema('mp')
	await migrate({ pool: admin, schema })
	producer = createQueue<{ work: { n: number }; slow: null }>({
		storage: postgres({ connectionString: DATABASE_URL, schema, poolSize: 3 }),
		worker: false,
		logger: silentLogger,
	})
	await producer.ready
})
afterEach(async () => {
	for (const c of children.splice(0)) {
		if (c.exitCode === null && c.signalCode === null) {
			c.kill('SIGCONT')
			c.kill('SIGKILL')
			await exited(c)
		}
	}
	await producer.close()
	await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
	rmSync(dir, { recursive: true, force: true })
})

async function enqueueAll(n: number): Promise<string[]> {
	const ids: string[] = []
	for (let i = 0; i < n; i += 5000) {
		const batch = Array.from({ length: Math.min(5000, n - i) }, (_, k) => ({
			name: 'work' as const,
			input: { n: i + k },
		}))
		ids.push(...((await producer.enqueueMany(batch)) as string[]))
	}
	return ids
}

it('4 processes at concurrency 25 share 20,000 jobs: every job runs exactly once', async () => {
	const ids = await enqueueAll(20_000)
	const ws = [0, 1, 2, 3].map(() => worker(['25', '30000']))
	await Promise.all(ws.map((c) => printed(c, 'ready')))
	await until(async () => (await completed()) === ids.length, 80_000, 'all jobs completed')
	for (const c of ws) c.kill('SIGTERM')
	for (const c of ws) expect((await exited(c)).code).toBe(0)
	const { counts, byFile } = runs()
	expect(counts.size).toBe(ids.length)
	expect([...counts.values()].every((n) => n === 1)).toBe(true)
	// The work was really shared.
	expect(byFile.size).toBe(4)
	for (const set of byFile.values()) expect(set.size).toBeGreaterThan(0)
}, 100_000)

it('loses no job when one of 4 processes is SIGKILLed halfway: its jobs are taken over after their lease', async () => {
	const n = 8000
	const ids = await enqueueAll(n)
	const ws = [0, 1, 2, 3].map(() => worker(['25', '1500', '2']))
	await Promise.all(ws.map((c) => printed(c, 'ready')))
	await until(async () => (await completed()) >= n / 2, 60_000, 'half the jobs completed')
	const victim = ws[0]!
	victim.kill('SIGKILL')
	expect((await exited(victim)).signal).toBe('SIGKILL')
	await until(async () => (await completed()) === n, 60_000, 'all jobs completed')
	for (const c of ws.slice(1)) c.kill('SIGTERM')
	for (const c of ws.slice(1)) expect((await exited(c)).code).toBe(0)
	const final = await producer.getStats()
	expect(final.total).toMatchObject({ completed: n, pending: 0, active: 0, dead: 0 })
	const { counts, byFile } = runs()
	for (const id of ids) expect(counts.get(id) ?? 0).toBeGreaterThanOrEqual(1)
	// Only jobs the killed process had started ran twice, and they were taken over by the reaper.
	// The jobs the killed process held were taken over by the reaper (LeaseLostError recorded); only
	// those, and only ones it had started, ran twice.
	const { rows } = await admin.query(
		`SELECT id FROM "${schema}".jobs WHERE errors @> '[{"name": "LeaseLostError"}]'`,
	)
	const reaped = new Set(rows.map((r: { id: string }) => r.id))
	expect(reaped.size).toBeGreaterThan(0)
	const victimRuns = byFile.get(`runs-${victim.pid}.log`)!
	const twice = [...counts].filter(([, c]) => c > 1).map(([id]) => id)
	for (const id of twice) {
		expect(victimRuns.has(id)).toBe(true)
		expect(reaped.has(id)).toBe(true)
	}
}, 100_000)

it('a paused process (SIGSTOP past its lease, then SIGCONT) cannot complete a job another took over', async () => {
	const paused = worker(['1', '1000', '1500'], `spool_mp_a_${process.pid}`)
	await printed(paused, 'ready')
	const id = (await producer.enqueue('slow', null))!
	await printed(paused, `started ${id}`)
	paused.kill('SIGSTOP')
	// Past the 1 s lease, another process reaps the job and runs it.
	const other = worker(['1', '1000', '1500'], `spool_mp_b_${process.pid}`)
	await printed(other, `started ${id}`)
	paused.kill('SIGCONT')
	await printed(paused, `leaseLost ${id}`)
	expect(await producer.result(id, { name: 'slow' })).toBe(other.pid)
	const job = await producer.getJob(id)
	expect(job).toMatchObject({ status: 'completed', attempt: 2, output: other.pid })
	expect(job!.errors.map((e) => e.name)).toEqual(['LeaseLostError'])
}, 60_000)

it('workers whose connections are terminated log it, retry with backoff, resume, and lose nothing', async () => {
	const n = 6000
	const app = `spool_mp_drop_${process.pid}`
	const ids = await enqueueAll(n)
	// Jobs of 5 ms at concurrency 5: about 2,000 jobs/s over both, so each quarter takes a while and
	// the terminations land mid-work (instant jobs finished several quarters between two polls).
	const ws = [0, 1].map(() => worker(['5', '5000', '5'], app))
	await Promise.all(ws.map((c) => printed(c, 'ready')))
	for (let round = 1; round <= 3; round++) {
		await until(async () => (await completed()) >= (n * round) / 4, 60_000, `a quarter more done (${round})`)
		const { rows } = await admin.query(
			'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1',
			[app],
		)
		expect(rows[0].n).toBeGreaterThan(0)
	}
	await until(async () => (await completed()) === n, 60_000, 'all jobs completed')
	for (const c of ws) c.kill('SIGTERM')
	for (const c of ws) expect((await exited(c)).code).toBe(0)
	const final = await producer.getStats()
	expect(final.total).toMatchObject({ completed: n, pending: 0, active: 0, dead: 0 })
	const { counts } = runs()
	for (const id of ids) expect(counts.get(id) ?? 0).toBeGreaterThanOrEqual(1)
	// They said so.
	const said = ws.map((c) => c.output.join('')).join('\n')
	expect(said).toMatch(/cannot be reached|connection lost|connection dropped|terminat/i)
}, 120_000)
