/**
 * `npm run bench` (`--quick` for a short run): spool's core numbers on memory and SQLite, side by
 * side with a raw better-sqlite3 loop running the same statements (the baseline, same run) and
 * BullMQ on Redis for context. Prints a table and writes JSON to bench/results/.
 *
 * `enqueue one` is a sequential loop of awaited `start()` calls: one commit (one fsync) per call.
 * `enqueue one x64` is 64 loops of them at once: concurrent calls, which SQLite may group-commit.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { bullmqProcess, redisUp } from './core/bullmq.js'
import { rawEnqueueBulk, rawEnqueueOne, rawProcess } from './core/raw.js'
import {
	enqueueBulk,
	enqueueConcurrent,
	enqueueOne,
	latency,
	memoryKind,
	processJobs,
	sqliteKind,
} from './core/spool.js'
import { fmt, gc, type Measurement, table, tempDir } from './core/util.js'

const quick = process.argv.includes('--quick')
const skipSoak = process.argv.includes('--no-soak')
const scale = quick ? 0.1 : 1
const n = (full: number) => Math.max(100, Math.round(full * scale))

const dir = tempDir()
const sqliteFull = sqliteKind('sqlite', dir.path)
const sqliteNormal = sqliteKind('sqlite-normal', dir.path, 'normal')
const results: Measurement[] = []
const log = (line: string) => process.stderr.write(`${line}\n`)

async function measure(
	scenario: string,
	system: string,
	jobs: number,
	fn: () => Promise<number>,
	unit: 'jobs/s' | 'ms' = 'jobs/s',
) {
	gc()
	const value = await fn()
	results.push({ scenario, system, value, unit, jobs })
	log(`  ${scenario.padEnd(18)} ${system.padEnd(16)} ${fmt(value, unit)} ${unit}`)
}

const redis = await redisUp()
log(`spool core bench${quick ? ' (quick)' : ''}: ${cpus().length} cores, load ${loadavg()[0]!.toFixed(2)}`)

try {
	const one = n(5000)
	await measure('enqueue one', 'raw sqlite', one, () => rawEnqueueOne(dir.path('raw-e1.db'), one))
	await measure('enqueue one', 'sqlite', one, () => enqueueOne(sqliteFull, one))
	await measure('enqueue one', 'sqlite normal', one, () => enqueueOne(sqliteNormal, one))
	await measure('enqueue one', 'memory', n(50_000), () => enqueueOne(memoryKind, n(50_000)))

	// Individual start() calls, 64 in flight: spool's group commit may share one commit among the
	// calls made together; the raw baseline is one transaction per 64 inserts.
	const conc = n(20_000)
	await measure('enqueue one x64', 'raw sqlite', conc, () => rawEnqueueBulk(dir.path('raw-e64.db'), conc, 64))
	await measure('enqueue one x64', 'sqlite', conc, () => enqueueConcurrent(sqliteFull, conc, 64))
	await measure('enqueue one x64', 'sqlite normal', conc, () => enqueueConcurrent(sqliteNormal, conc, 64))

	const bulk = n(100_000)
	await measure('enqueue bulk 1000', 'raw sqlite', bulk, () =>
		rawEnqueueBulk(dir.path('raw-eb.db'), bulk, 1000),
	)
	await measure('enqueue bulk 1000', 'sqlite', bulk, () => enqueueBulk(sqliteFull, bulk, 1000))
	await measure('enqueue bulk 1000', 'memory', n(200_000), () => enqueueBulk(memoryKind, n(200_000), 1000))

	for (const [c, jobs] of [
		[1, n(5000)],
		[10, n(40_000)],
		[50, n(60_000)],
	] as const) {
		const scenario = `process c${c}`
		await measure(scenario, 'raw sqlite', jobs, () => rawProcess(dir.path(`raw-p${c}.db`), jobs, c))
		await measure(scenario, 'sqlite', jobs, () => processJobs(sqliteFull, jobs, c))
		if (c > 1) await measure(scenario, 'sqlite normal', jobs, () => processJobs(sqliteNormal, jobs, c))
		await measure(scenario, 'memory', jobs * 5, () => processJobs(memoryKind, jobs * 5, c))
		if (redis && c > 1) await measure(scenario, 'bullmq', n(20_000), () => bullmqProcess(n(20_000), c))
	}

	// The rows above run the worker's defaults: `worker.prefetch: 'auto'`, so under a backlog of short
	// jobs a commit settles and claims up to 1,000 jobs, while the raw loop of those rows claims only
	// `concurrency` per transaction (the baseline). Two more views, so the ratios can be read:
	// - `process cN prefetch 0`: the worker claiming only its free slots, against that same raw loop;
	// - `process raw batch 1000`: the raw loop claiming 1,000 per transaction, the ceiling for 'auto'.
	for (const [c, jobs] of [
		[10, n(40_000)],
		[50, n(60_000)],
	] as const) {
		const scenario = `process c${c} prefetch 0`
		await measure(scenario, 'raw sqlite', jobs, () => rawProcess(dir.path(`raw-p${c}pf0.db`), jobs, c))
		await measure(scenario, 'sqlite', jobs, () => processJobs(sqliteFull, jobs, c, 0))
		await measure(scenario, 'sqlite normal', jobs, () => processJobs(sqliteNormal, jobs, c, 0))
		await measure(scenario, 'memory', jobs * 5, () => processJobs(memoryKind, jobs * 5, c, 0))
	}
	{
		const jobs = n(60_000)
		await measure('process raw batch 1000', 'raw sqlite', jobs, () =>
			rawProcess(dir.path('raw-p1000.db'), jobs, 1000),
		)
	}

	const samples = n(3000)
	for (const kind of [sqliteFull, memoryKind]) {
		let l = { p50: Number.NaN, p99: Number.NaN }
		await measure(
			'latency p50',
			kind.name,
			samples,
			async () => {
				l = await latency(kind, samples)
				return l.p50
			},
			'ms',
		)
		results.push({ scenario: 'latency p99', system: kind.name, value: l.p99, unit: 'ms', jobs: samples })
		log(`  ${'latency p99'.padEnd(18)} ${kind.name.padEnd(16)} ${fmt(l.p99, 'ms')} ms`)
	}
} finally {
	dir.cleanup()
}

interface Soak {
	jobs: number
	jobsPerSec: number
	rssBefore: number
	rssAfter: number
	heapBefore: number
	heapAfter: number
	leftovers: Record<string, number>
}
let soak: Soak | null = null
if (!skipSoak) {
	const jobs = quick ? 100_000 : 1_000_000
	log(`  soak: ${jobs.toLocaleString('en-US')} jobs on memory in a child process...`)
	const child = spawnSync(
		process.execPath,
		['--expose-gc', '--import', 'tsx', join(import.meta.dirname, 'core/soak.ts'), String(jobs)],
		{ encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
	)
	if (child.status === 0) soak = JSON.parse(child.stdout.trim().split('\n').pop()!) as Soak
	else log(`  the soak failed (exit ${child.status}); the other results are still written`)
}

// ---------------------------------------------------------------------------------------------
// The table: one row per scenario, ratios to the raw loop measured in this run.

const get = (scenario: string, system: string) =>
	results.find((r) => r.scenario === scenario && r.system === system)
const scenarios = [...new Set(results.map((r) => r.scenario))]
const systems = ['memory', 'sqlite', 'raw sqlite', 'sqlite normal', 'bullmq']
const rows = scenarios.map((s) => {
	const cells = systems.map((sys) => {
		const m = get(s, sys)
		return m ? fmt(m.value, m.unit) : '-'
	})
	const spool = get(s, 'sqlite')
	const raw = get(s, 'raw sqlite')
	const ratio = spool && raw ? `${(spool.value / raw.value).toFixed(2)}x` : '-'
	const unit = results.find((r) => r.scenario === s)!.unit
	return [`${s} (${unit})`, ...cells, ratio]
})
const printed = table(['scenario', ...systems, 'sqlite/raw'], rows)
process.stdout.write(`\n${printed}\n`)
if (soak) {
	const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`
	const growth = soak.rssAfter / soak.rssBefore - 1
	const left = Object.entries(soak.leftovers).filter(([, v]) => v !== 0)
	process.stdout.write(
		`\nmemory soak: ${soak.jobs.toLocaleString('en-US')} jobs at ${Math.round(soak.jobsPerSec).toLocaleString('en-US')}/s; ` +
			`RSS ${mb(soak.rssBefore)} -> ${mb(soak.rssAfter)} (${(growth * 100).toFixed(1)}%, ${Math.abs(growth) <= 0.2 ? 'flat' : 'NOT flat'}); ` +
			`heap ${mb(soak.heapBefore)} -> ${mb(soak.heapAfter)}\n` +
			`left behind after settle: ${left.length === 0 ? 'nothing (every per-job map and set is empty)' : JSON.stringify(Object.fromEntries(left))}\n`,
	)
}

const outDir = join(import.meta.dirname, 'results')
mkdirSync(outDir, { recursive: true })
const stamp = new Date().toISOString().replace(/[:.]/g, '-')
const file = join(outDir, `core-${stamp}.json`)
writeFileSync(
	file,
	`${JSON.stringify({ date: new Date().toISOString(), quick, cores: cpus().length, node: process.version, results, soak }, null, '\t')}\n`,
)
process.stdout.write(`\nwritten to ${file}\n`)
