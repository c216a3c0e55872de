/**
 * Group commit of concurrent enqueues on PostgreSQL (src/storage/postgres/batch.ts): calls made
 * together share statements, each still resolves with its own results once they are stored, an
 * error reaches only the call it belongs to, and close writes what was already called.
 */
import pg from 'pg'
import { afterAll, afterEach, expect, it } from 'vitest'
import { createJob, createQueue, silentLogger } from '../../src/index.js'
import type { JsonText } from '../../src/json.js'
import type { NewJob } from '../../src/storage/contract.js'
import { postgres } from '../../src/storage/postgres/index.js'
import { Listener } from '../../src/storage/postgres/listener.js'
import { PostgresStorage } from '../../src/storage/postgres/storage.js'
import { adminPool, DATABASE_URL, freshSchema } from './helpers.js'

const admin = adminPool()
const schemas: string[] = []
const cleanups: (() => Promise<void>)[] = []
function schema(): string {
	const s = freshSchema('enqueue')
	schemas.push(s)
	return s
}
afterEach(async () => {
	for (const c of cleanups.splice(0).reverse()) await c()
	for (const s of schemas.splice(0)) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)
})
afterAll(() => admin.end())

let n = 0
function newJob(over: Partial<NewJob> = {}): NewJob {
	return {
		id: `job-${process.pid}-${n++}`,
		name: 'email',
		input: '{"to":"a@b.c"}' as JsonText,
		priority: 0,
		runAt: 1_000,
		maxAttempts: 3,
		dedupeKey: null,
		dedupeScope: 'pending+active',
		idempotencyKey: null,
		parentId: null,
		backoff: null,
		concurrency: null,
		throttle: null,
		debounce: null,
		...over,
	}
}

/** Counts the statements named `…:<name>` that connections of `pool` run. */
function countStatements(pool: pg.Pool, name: string): () => number {
	let n = 0
	const wrapped = new WeakSet<object>()
	pool.on('acquire', (client) => {
		if (wrapped.has(client)) return
		wrapped.add(client)
		const query = client.query.bind(client) as (...args: unknown[]) => unknown
		;(client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
			if (((args[0] as { name?: string } | undefined)?.name ?? '').endsWith(`:${name}`)) n++
			return query(...args)
		}
	})
	return () => n
}

async function openStorage(pool?: pg.Pool): Promise<PostgresStorage> {
	const storage = new PostgresStorage(
		pool ? { pool, schema: schema() } : { connectionString: DATABASE_URL, schema: schema() },
	)
	await storage.open()
	cleanups.push(() => storage.close())
	return storage
}

it('writes concurrent start() calls in fewer statements than calls, each resolved once stored', async () => {
	const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 })
	cleanups.push(() => pool.end())
	const inserts = countStatements(pool, 'insertManyFresh')
	const queue = createQueue({
		jobs: { email: createJob({ name: 'email' }, async (_input: { i: number }) => {}) },
		storage: postgres({ pool, schema: schema() }),
		worker: false,
		logger: silentLogger,
	})
	cleanups.push(() => queue.close())
	await queue.ready
	const handles = await Promise.all(Array.from({ length: 300 }, (_, i) => queue.jobs.email.start({ i })))
	expect(handles.every((h) => h.status === 'created')).toBe(true)
	expect(new Set(handles.map((h) => h.id)).size).toBe(300)
	expect(inserts()).toBeGreaterThan(0)
	expect(inserts()).toBeLessThan(300)
	// Every call resolved after its job was stored.
	const stats = await queue.getStats()
	expect(stats.total.pending).toBe(300)
})

it('gives an error only to the call whose job caused it', async () => {
	const storage = await openStorage()
	const good = Array.from({ length: 20 }, () => newJob())
	// run_at is bigint: a fraction fails the statement that carries it.
	const bad = newJob({ runAt: 1.5 })
	const calls = [
		...good.slice(0, 10).map((j) => storage.enqueue({ jobs: [j], now: 1_000 })),
		storage.enqueue({ jobs: [bad], now: 1_000 }),
		...good.slice(10).map((j) => storage.enqueue({ jobs: [j], now: 1_000 })),
	]
	const settled = await Promise.allSettled(calls)
	expect(settled[10]!.status).toBe('rejected')
	for (const [i, s] of settled.entries()) {
		if (i === 10) continue
		expect(s.status).toBe('fulfilled')
	}
	for (const j of good) expect((await storage.getJob({ id: j.id }))?.status).toBe('pending')
	expect(await storage.getJob({ id: bad.id })).toBeNull()
})

it('decides a known id per call in a shared batch, keeps each call its own time', async () => {
	const storage = await openStorage()
	const a = newJob()
	await storage.enqueue({ jobs: [a], now: 1_000 })
	const b = newJob()
	const c = newJob()
	const same = newJob()
	const [rb, ra, rc, s1, s2] = await Promise.all([
		storage.enqueue({ jobs: [b], now: 2_000 }),
		storage.enqueue({ jobs: [newJob({ id: a.id })], now: 2_000 }),
		storage.enqueue({ jobs: [c], now: 3_000 }),
		storage.enqueue({ jobs: [same], now: 3_000 }),
		storage.enqueue({ jobs: [newJob({ id: same.id })], now: 3_000 }),
	])
	expect(rb).toEqual([{ status: 'created', id: b.id }])
	expect(ra).toEqual([{ status: 'existing', id: a.id }])
	expect(rc).toEqual([{ status: 'created', id: c.id }])
	expect([s1![0]!.status, s2![0]!.status].sort()).toEqual(['created', 'existing'])
	expect((await storage.getJob({ id: b.id }))!.createdAt).toBe(2_000)
	expect((await storage.getJob({ id: c.id }))!.createdAt).toBe(3_000)
	expect((await storage.getJob({ id: a.id }))!.createdAt).toBe(1_000)
})

it('writes on close the enqueues already called', async () => {
	const s = schema()
	const storage = new PostgresStorage({ connectionString: DATABASE_URL, schema: s })
	await storage.open()
	const jobs = Array.from({ length: 5 }, () => newJob())
	const calls = jobs.map((j) => storage.enqueue({ jobs: [j], now: 1_000 }))
	await storage.close()
	for (const r of await Promise.all(calls)) expect(r[0]!.status).toBe('created')
	const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${s}".jobs`)
	expect(rows[0].n).toBe(5)
})

it('stores ids, names and inputs exactly as given, whatever characters they hold', async () => {
	const storage = await openStorage()
	const texts = [
		'{"q":"say \\"hi\\"","path":"C:\\\\dir\\\\file","nl":"a\\nb","u":"\\u0000é😀"}',
		'[1, 2,  {"spaced" :  true}]',
		'"a string"',
		'null',
		'-1.5e-7',
		'{"nested":{"a":[{"b":"}{,]["}]}}',
	]
	const jobs = texts.map((input, i) =>
		newJob({
			id: `id "${i}" \\ {x,y} NULL`,
			name: i % 2 ? 'na"me\\' : 'plain',
			input: input as JsonText,
			parentId: i === 2 ? 'parent "p" \\' : null,
			backoff: i === 3 ? ('{"initial":"1s"}' as JsonText) : null,
		}),
	)
	const results = await storage.enqueue({ jobs, now: 1_000 })
	expect(results.map((r) => r.status)).toEqual(texts.map(() => 'created'))
	for (const j of jobs) {
		const row = await storage.getJob({ id: j.id })
		expect(row?.input).toBe(j.input)
		expect(row?.name).toBe(j.name)
		expect(row?.parentId).toBe(j.parentId)
		expect(row?.backoff).toBe(j.backoff)
	}
})

it('writes concurrent enqueues with keys together, deciding each key as calls in order would', async () => {
	const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 })
	cleanups.push(() => pool.end())
	const keyedStatements = countStatements(pool, 'enqueueKeyed')
	const storage = await openStorage(pool)
	// 60 calls over 10 idempotency keys, and 20 over 2 dedupe keys, all at once.
	const byKey = Array.from({ length: 60 }, (_, i) => newJob({ idempotencyKey: `k${i % 10}` }))
	const deduped = Array.from({ length: 20 }, (_, i) => newJob({ dedupeKey: `d${i % 2}` }))
	const results = await Promise.all(
		[...byKey, ...deduped].map((j, i) => storage.enqueue({ jobs: [j], now: 1_000 + i })),
	)
	expect(keyedStatements()).toBeGreaterThan(0)
	expect(keyedStatements()).toBeLessThan(80)
	const created = results.flat().filter((r) => r.status === 'created')
	expect(created).toHaveLength(12)
	for (let k = 0; k < 10; k++) {
		const calls = byKey
			.map((j, i) => ({ j, r: results[i]![0]! }))
			.filter(({ j }) => j.idempotencyKey === `k${k}`)
		// The first call of a key in call order creates its job; the others get that job.
		expect(calls[0]!.r).toEqual({ status: 'created', id: calls[0]!.j.id })
		for (const c of calls.slice(1)) expect(c.r).toEqual({ status: 'existing', id: calls[0]!.j.id })
		// Each call's own time is its job's.
		expect((await storage.getJob({ id: calls[0]!.j.id }))!.createdAt).toBe(1_000 + byKey.indexOf(calls[0]!.j))
	}
	const dedupeResults = results.slice(60).map((r) => r[0]!)
	expect(dedupeResults.filter((r) => r.status === 'created')).toHaveLength(2)
	expect(dedupeResults.filter((r) => r.status === 'deduped')).toHaveLength(18)
	expect((await storage.getStats({})).total.pending).toBe(12)
})

it('the listener skips notifications from the backends it is told to ignore', async () => {
	const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 })
	cleanups.push(() => pool.end())
	const channel = `${schema()}_jobs`
	const mineClient = await pool.connect()
	const otherClient = await pool.connect()
	cleanups.push(async () => {
		mineClient.release()
		otherClient.release()
	})
	const minePid = (mineClient as unknown as { processID: number }).processID
	const ignore = (pid: number) => pid === minePid
	let calls = 0
	const listener = new Listener(pool, channel, silentLogger, () => calls++, ignore)
	listener.start()
	cleanups.push(async () => listener.stop())
	const until = async (n: number) => {
		const deadline = Date.now() + 5_000
		while (calls < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
	}
	await until(1) // the catch-up call once LISTEN is in place
	expect(calls).toBe(1)
	await mineClient.query(`NOTIFY "${channel}"`)
	await new Promise((r) => setTimeout(r, 100))
	expect(calls).toBe(1)
	await otherClient.query(`NOTIFY "${channel}"`)
	await until(2)
	expect(calls).toBe(2)
})
