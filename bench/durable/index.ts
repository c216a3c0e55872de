/**
 * bench:durable: the overhead of one memoized step and of one sleep/resume cycle, on spool's SQLite
 * and PostgreSQL storages and on DBOS (@dbos-inc/dbos-sdk) over the same PostgreSQL (its own
 * schema), in one run. A workflow of STEPS no-op steps, and one of SLEEPS sleeps of 1 ms, each
 * timed end to end and divided by the count, after subtracting an empty workflow's time.
 *
 *   npm run bench:durable            (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DBOS } from '@dbos-inc/dbos-sdk'
import pg from 'pg'
import {
	createJob,
	createQueue,
	type JobContext,
	type Queue,
	type Storage,
	silentLogger,
} from '../../src/index.js'
import { postgres } from '../../src/storage/postgres/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const STEPS = Number(process.env.STEPS ?? 200)
const SLEEPS = Number(process.env.SLEEPS ?? 20)
const ROUNDS = 3

interface Row {
	system: string
	stepMs: number
	sleepMs: number
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function time(fn: () => Promise<unknown>): Promise<number> {
	const t = performance.now()
	await fn()
	return performance.now() - t
}

async function spool(system: string, storage: Storage): Promise<Row> {
	const steps = createJob({ name: 'steps' }, async (n: number, ctx: JobContext) => {
		let total = 0
		for (let i = 0; i < n; i++) total += await ctx.run(`s${i}`, () => i)
		return total
	})
	const sleeps = createJob({ name: 'sleeps' }, async (n: number, ctx: JobContext) => {
		for (let i = 0; i < n; i++) await ctx.sleep(1)
		return n
	})
	const q = createQueue({
		jobs: { steps, sleeps },
		storage,
		logger: silentLogger,
		worker: { pollInterval: '1s' },
	}) as unknown as Queue<{ steps: typeof steps; sleeps: typeof sleeps }>
	await q.ready
	const measure = async (name: 'steps' | 'sleeps', n: number) => {
		const empty: number[] = []
		const full: number[] = []
		for (let r = 0; r < ROUNDS; r++) {
			empty.push(await time(() => q.jobs[name].run(0)))
			full.push(await time(() => q.jobs[name].run(n)))
		}
		return Math.max(0, median(full) - median(empty)) / n
	}
	const row = { system, stepMs: await measure('steps', STEPS), sleepMs: await measure('sleeps', SLEEPS) }
	await q.close()
	return row
}

async function dbos(): Promise<Row> {
	DBOS.setConfig({
		name: 'spool-bench-durable',
		systemDatabaseUrl: url,
		systemDatabaseSchemaName: 'bench_dbos',
		logLevel: 'error',
	})
	const steps = DBOS.registerWorkflow(
		async (n: number) => {
			let total = 0
			for (let i = 0; i < n; i++) total += await DBOS.runStep(async () => i, { name: `s${i}` })
			return total
		},
		{ name: 'steps' },
	)
	const sleeps = DBOS.registerWorkflow(
		async (n: number) => {
			for (let i = 0; i < n; i++) await DBOS.sleep(1)
			return n
		},
		{ name: 'sleeps' },
	)
	await DBOS.launch()
	const measure = async (wf: (n: number) => Promise<number>, n: number) => {
		const empty: number[] = []
		const full: number[] = []
		for (let r = 0; r < ROUNDS; r++) {
			empty.push(await time(() => wf(0)))
			full.push(await time(() => wf(n)))
		}
		return Math.max(0, median(full) - median(empty)) / n
	}
	const row = {
		system: 'DBOS 5.3 (PostgreSQL)',
		stepMs: await measure(steps, STEPS),
		sleepMs: await measure(sleeps, SLEEPS),
	}
	await DBOS.shutdown()
	return row
}

const admin = new pg.Pool({ connectionString: url, max: 1 })
await admin.query('DROP SCHEMA IF EXISTS bench_durable CASCADE')
await admin.query('DROP SCHEMA IF EXISTS bench_dbos CASCADE')
const dir = mkdtempSync(join(tmpdir(), 'spool-bench-durable-'))
const rows: Row[] = []
try {
	rows.push(await spool('spool SQLite', sqlite({ path: join(dir, 'spool.db') })))
	rows.push(await spool('spool PostgreSQL', postgres({ connectionString: url, schema: 'bench_durable' })))
	rows.push(await dbos())
} finally {
	rmSync(dir, { recursive: true, force: true })
	await admin.query('DROP SCHEMA IF EXISTS bench_durable CASCADE').catch(() => {})
	await admin.query('DROP SCHEMA IF EXISTS bench_dbos CASCADE').catch(() => {})
	await admin.end()
}
const dbosRow = rows.find((r) => r.system.startsWith('DBOS'))
console.log(`durable overhead, ${STEPS} steps and ${SLEEPS} sleeps per workflow, median of ${ROUNDS}:`)
console.log('| system | ms per memoized step | ms per sleep/resume cycle | step vs DBOS |')
console.log('|---|---:|---:|---:|')
for (const r of rows) {
	const ratio = dbosRow && dbosRow.stepMs > 0 ? (r.stepMs / dbosRow.stepMs).toFixed(2) : '-'
	console.log(`| ${r.system} | ${r.stepMs.toFixed(3)} | ${r.sleepMs.toFixed(2)} | ${ratio} |`)
}
mkdirSync('bench/results', { recursive: true })
writeFileSync(
	join('bench/results', `durable-${Date.now()}.json`),
	JSON.stringify({ at: new Date().toISOString(), steps: STEPS, sleeps: SLEEPS, rows }, null, 2),
)
process.exit(0)
