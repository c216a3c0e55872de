import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, expect, it } from 'vitest'
import { ConfigError, createQueue, type Logger, memory, StorageForeignError } from '../../src/index.js'
import { migrate, postgres } from '../../src/storage/postgres/index.js'
import { adminPool, DATABASE_URL, describeSchema, freshSchema } from './helpers.js'

const admin = adminPool()
const schemas: string[] = []
const cleanups: (() => Promise<void>)[] = []
function schema(prefix = 'open'): string {
	const s = freshSchema(prefix)
	schemas.push(s)
	return s
}
afterEach(async () => {
	for (const c of cleanups.splice(0).reverse()) await c()
	for (const s of schemas.splice(0)) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)
})
afterAll(() => admin.end())

/** Waits for `fn` to hold, polling; fails after `ms`. */
async function until(fn: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
	const end = Date.now() + ms
	while (!(await fn())) {
		if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
		await new Promise((r) => setTimeout(r, 20))
	}
}

it('matches the committed schema snapshot', async () => {
	const s = schema()
	expect(await migrate({ connectionString: DATABASE_URL, schema: s })).toEqual({
		applied: ['001_init', '002_flow', '003_durable'],
	})
	const file = join(import.meta.dirname, 'schema.snapshot.txt')
	const actual = await describeSchema(admin, s)
	if (process.env.UPDATE_SNAPSHOT) writeFileSync(file, actual)
	expect(actual).toBe(readFileSync(file, 'utf8'))
})

it('migrates once when many processes migrate at once (advisory lock), and again is a no-op', async () => {
	const s = schema()
	const results = await Promise.all(
		Array.from({ length: 6 }, () => migrate({ connectionString: DATABASE_URL, schema: s })),
	)
	expect(results.filter((r) => r.applied.length > 0)).toEqual([
		{ applied: ['001_init', '002_flow', '003_durable'] },
	])
	expect(await migrate({ pool: admin, schema: s })).toEqual({ applied: [] })
	// Storages opening at once with migrate: 'auto' are just as safe.
	const s2 = schema()
	const storages = Array.from({ length: 4 }, () => postgres({ connectionString: DATABASE_URL, schema: s2 }))
	await Promise.all(storages.map((x) => x.open()))
	await Promise.all(storages.map((x) => x.close()))
	const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${s2}".migrations`)
	expect(rows[0].n).toBe(3)
})

it('refuses a schema migrated by a newer spool, and an unmigrated one with migrate: false', async () => {
	const s = schema()
	await expect(
		postgres({ connectionString: DATABASE_URL, schema: s, migrate: false }).open(),
	).rejects.toThrow(/spool migrate/)
	await migrate({ pool: admin, schema: s })
	const ok = postgres({ connectionString: DATABASE_URL, schema: s, migrate: false })
	await ok.open()
	await ok.close()
	await admin.query(`INSERT INTO "${s}".migrations (version, name) VALUES (999, '999_future')`)
	const err = await migrate({ pool: admin, schema: s }).catch((e: unknown) => e)
	expect(err).toBeInstanceOf(StorageForeignError)
	expect((err as Error).message).toMatch(/newer spool/)
	await expect(postgres({ connectionString: DATABASE_URL, schema: s }).open()).rejects.toThrow(/newer spool/)
})

it('refuses bad options with a named error', () => {
	expect(() => postgres({ connectionString: DATABASE_URL, schema: 'Robert"; DROP TABLE x' })).toThrow(
		ConfigError,
	)
	expect(() => postgres({ connectionString: DATABASE_URL, poolSize: 1 })).toThrow(ConfigError)
})

it('enqueues inside the caller transaction: the job exists only if it commits, and NOTIFY wakes the worker', async () => {
	const s = schema('tx')
	const ran: number[] = []
	const q = createQueue({
		jobs: { work: async (n: number) => void ran.push(n) },
		storage: postgres({ connectionString: DATABASE_URL, schema: s, poolSize: 3 }),
		logger: silent(),
		// Only a notification can wake this worker within the test.
		worker: { pollInterval: '1h' },
	})
	cleanups.push(() => q.close())
	await q.ready
	await q.drain()
	const client = await admin.connect()
	try {
		await client.query('BEGIN')
		const rolledBack = await q.jobs.work.start(1, { tx: client })
		await client.query('ROLLBACK')
		expect(await q.getJob(rolledBack.id)).toBeNull()
		await client.query('BEGIN')
		await client.query('SELECT 1')
		const committed = await q.jobs.work.start(2, { tx: client })
		// Not visible, not run, before the commit.
		expect(await q.getJob(committed.id)).toBeNull()
		await client.query('COMMIT')
		expect(await committed.result()).toBeUndefined()
	} finally {
		client.release()
	}
	expect(ran).toEqual([2])
	// Other storages refuse a tx rather than ignore it.
	const m = createQueue({
		jobs: { work: async () => {} },
		storage: memory(),
		logger: silent(),
		worker: false,
	})
	cleanups.push(() => m.close())
	await expect(m.enqueue('work', undefined, { tx: admin })).rejects.toThrow(ConfigError)
})

it('a worker in another process is woken by NOTIFY, and its listener reconnects after its connection is killed', async () => {
	const s = schema('notify')
	const app = `spool_notify_${process.pid}`
	const warnings: string[] = []
	const ran: number[] = []
	const worker = createQueue({
		jobs: { work: async (n: number) => void ran.push(n) },
		storage: postgres({
			connectionString: `${DATABASE_URL}?application_name=${app}`,
			schema: s,
			poolSize: 3,
			logger: { ...silent(), warn: (_f, m) => warnings.push(m) },
		}),
		logger: silent(),
		worker: { pollInterval: '1h' },
	})
	cleanups.push(() => worker.close())
	const producer = createQueue({
		jobs: { work: async (_n: number) => {} },
		storage: postgres({ connectionString: DATABASE_URL, schema: s, poolSize: 2 }),
		logger: silent(),
		worker: false,
	})
	cleanups.push(() => producer.close())
	await worker.ready
	await producer.ready
	await until(
		async () =>
			(
				await admin.query(
					"SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
					[app],
				)
			).rows[0].n === 1,
		5000,
		'the listener',
	)
	await producer.enqueue('work', 1)
	await until(() => ran.length === 1, 5000, 'the first job')
	// Kill every connection of the worker (the listener's among them).
	await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
		app,
	])
	await until(() => warnings.some((w) => /listener connection lost/.test(w)), 5000, 'the warning')
	await until(() => warnings.some((w) => /listener reconnected/.test(w)), 5000, 'the reconnection')
	await producer.enqueue('work', 2)
	await until(() => ran.length === 2, 5000, 'the second job')
	expect(ran).toEqual([1, 2])
})

function silent(): Logger {
	return { debug() {}, info() {}, warn() {}, error() {} }
}
