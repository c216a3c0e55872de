/**
 * bench:flow — what flow control costs. Processes N no-op jobs through a queue on each storage
 * (memory, SQLite, PostgreSQL when DATABASE_URL answers), four ways:
 * - plain: no flow options (the baseline);
 * - keyed: `concurrency: (input) => ({ id: user, limit: 2 })` over 50 users (claims count keys);
 * - window: `concurrency: (input) => ({ id: user, limit: '100/s' })` (claims read and write window state);
 * - throttle: `throttle: (input) => ({ id: user, duration: '100/s', mode: 'queue' })` (each enqueue decides).
 * 2000 jobs over 50 users is 40 per user: the rates are never reached, so the numbers show the
 * bookkeeping, not the limit. (Window and throttle state holds the last `count` times of a key:
 * a decision costs O(count), so very large counts per key are slow by design.)
 * Usage: npm run bench:flow [-- --jobs 2000]. Writes bench/results/flow-<date>.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { createJob, createQueue, type Storage, silentLogger } from '../../src/index.js'
import { memory } from '../../src/storage/memory.js'
import { postgres } from '../../src/storage/postgres/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'

const arg = process.argv.indexOf('--jobs')
const N = arg > 0 ? Number(process.argv[arg + 1]) : 2000
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

type Mode = 'plain' | 'keyed' | 'window' | 'throttle'
const MODES: Mode[] = ['plain', 'keyed', 'window', 'throttle']

function job(mode: Mode) {
	const input = { user: '' }
	type In = typeof input
	const handler = async (_: In) => {}
	if (mode === 'keyed')
		return createJob({ name: 'work', concurrency: ({ user }: In) => ({ id: user, limit: 2 }) }, handler)
	if (mode === 'window')
		return createJob({ name: 'work', concurrency: ({ user }: In) => ({ id: user, limit: '100/s' }) }, handler)
	if (mode === 'throttle')
		return createJob(
			{ name: 'work', throttle: ({ user }: In) => ({ id: user, duration: '100/s', mode: 'queue' }) },
			handler,
		)
	return createJob({ name: 'work' }, handler)
}

const results: Record<string, Record<Mode, { enqueuePerSec: number; processPerSec: number }>> = {}
const storages: [string, () => Promise<{ make: () => Storage; cleanup: () => Promise<void> }>][] = [
	[
		'memory',
		async () => {
			const m = memory()
			// One memory store for both queues; close() of a memory storage keeps its state.
			return { make: () => m, cleanup: async () => {} }
		},
	],
	[
		'sqlite',
		async () => {
			const dir = mkdtempSync(join(tmpdir(), 'spool-bench-flow-'))
			return {
				make: () => sqlite({ path: join(dir, 'b.db') }),
				cleanup: async () => rmSync(dir, { recursive: true, force: true }),
			}
		},
	],
]
const admin = new pg.Pool({ connectionString: url, max: 1 })
try {
	await admin.query('SELECT 1')
	storages.push([
		'postgres',
		async () => {
			const schema = `spool_bench_flow_${process.pid}_${Math.random().toString(36).slice(2, 6)}`
			return {
				make: () => postgres({ connectionString: url, schema }),
				cleanup: async () => {
					await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
				},
			}
		},
	])
} catch {
	console.log('PostgreSQL not reachable: skipped')
}

for (const [name, setup] of storages) {
	results[name] = {} as Record<Mode, { enqueuePerSec: number; processPerSec: number }>
	// A first plain run warms the JIT and the connection; its numbers are dropped.
	for (const mode of ['plain', ...MODES] as Mode[]) {
		const s = await setup()
		results[name]![mode] = await runOn(s.make, mode)
		await s.cleanup()
		console.log(name.padEnd(9), mode.padEnd(9), results[name]![mode])
	}
}
await admin.end()

/** Enqueues N jobs from a producer queue, then times a worker queue over the same place running them. */
async function runOn(make: () => Storage, mode: Mode) {
	// The producer closes its storage; the worker opens a fresh one over the same place.
	const first = make()
	const producer = createQueue({
		jobs: { work: job(mode) },
		storage: first,
		logger: silentLogger,
		worker: false,
	})
	await producer.ready
	const items = Array.from({ length: N }, (_, i) => ({
		name: 'work' as const,
		input: { user: `u${i % 50}` },
	}))
	const t0 = performance.now()
	for (let i = 0; i < N; i += 500) await producer.enqueueMany(items.slice(i, i + 500))
	const t1 = performance.now()
	await producer.close()
	const w = createQueue({
		jobs: { work: job(mode) },
		storage: make(),
		logger: silentLogger,
		concurrency: 50,
		worker: { pollInterval: '20ms' },
	})
	const t2 = performance.now()
	await w.ready
	for (;;) {
		await w.drain()
		if ((await w.getStats()).total.completed === N) break
		await new Promise((r) => setTimeout(r, 5))
	}
	const t3 = performance.now()
	await w.close()
	return {
		enqueuePerSec: Math.round(N / ((t1 - t0) / 1000)),
		processPerSec: Math.round(N / ((t3 - t2) / 1000)),
	}
}

mkdirSync(join(import.meta.dirname, '..', 'results'), { recursive: true })
const file = join(import.meta.dirname, '..', 'results', `flow-${new Date().toISOString().slice(0, 10)}.json`)
writeFileSync(file, JSON.stringify({ jobs: N, date: new Date().toISOString(), results }, null, 2))
console.log(
	`\n| storage | mode | enqueue jobs/s | process jobs/s | process vs plain |\n|---|---|---|---|---|`,
)
for (const [name, r] of Object.entries(results)) {
	for (const mode of MODES) {
		const x = r[mode]
		console.log(
			`| ${name} | ${mode} | ${x.enqueuePerSec} | ${x.processPerSec} | ${(x.processPerSec / r.plain.processPerSec).toFixed(2)} |`,
		)
	}
}
console.log(`\nwritten to ${file}`)
