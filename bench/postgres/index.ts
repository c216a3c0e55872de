/**
 * The PostgreSQL benchmark (issue 3, item 10): spool on PostgreSQL side by side with pg-boss,
 * graphile-worker, BullMQ (Redis and PostgreSQL backends) and a raw-SQL baseline, in one run.
 *
 *   npm run bench:postgres                # the full run (about 17 minutes here)
 *   npm run bench:postgres -- --quick     # a smoke run with small counts
 *   npm run bench:postgres -- --systems=spool,raw --measures=process,latency
 *
 * Every system gets its own database (or Redis key prefix), dropped and recreated before each
 * measure. Workers run in a child process (bench/postgres/child.ts). Results: a table on stdout
 * and JSON in bench/results/.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { ChildReport } from './child.js'
import { type Payload, percentile, type System, sleep, wallNow } from './common.js'
import { loadSystem, SYSTEM_KEYS } from './registry.js'

const args = process.argv.slice(2)
const flag = (name: string): string | undefined =>
	args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`))?.split('=')[1] ??
	(args.includes(`--${name}`) ? '' : undefined)
const quick = flag('quick') !== undefined

// Each measure recreates its system's database, which terminates the connections still open to it
// (SQLSTATE 57P01). A peer's pool that kept one (graphile-worker's WorkerUtils) then throws that
// error from an event emitter with no listener and would end the whole run; it concerns a
// measure already finished, so it is reported and the run goes on. Any other error still ends it.
process.on('uncaughtException', (err: Error & { code?: string }) => {
	if (err.code === '57P01') {
		console.error(`(ignored: a finished measure's connection was terminated: ${err.message})`)
		return
	}
	console.error(err)
	process.exit(1)
})
const only = flag('systems')?.split(',').filter(Boolean)
const measures = new Set(
	(flag('measures') ?? 'bulk,single,concurrent,process,latency,finished').split(',').filter(Boolean),
)

const N = quick ? 2_000 : 20_000
const SINGLE_N = quick ? 200 : 2_000
/** Concurrent one-at-a-time enqueue: this many callers, each awaiting its own enqueue in a loop. */
const CALLERS = 64
const CONCURRENT_N = quick ? 2_000 : 10_000
const LATENCY_N = quick ? 100 : 500
const LATENCY_SPACING_MS = 5
const FINISHED_ROWS = quick ? 50_000 : 1_000_000
const CONCURRENCIES = [10, 50] as const
/** A processing run stops counting this long after its first job started (pg-boss, BullMQ-pg). */
const PROCESS_CAP_MS = quick ? 20_000 : 60_000

const CHILD = path.join(import.meta.dirname, 'child.ts')

/** Everything measured for one system. */
interface Result {
	label: string
	bulkPerSec?: number
	singlePerSec?: number
	/** One-at-a-time enqueues by CALLERS concurrent callers (each awaits its own). */
	concurrentPerSec?: number
	process10PerSec?: number
	process50PerSec?: number
	rss50Mb?: number
	/** The same process before its worker started: node, tsx, pg and the system's library loaded. */
	rss50IdleMb?: number
	latencyP50?: number
	latencyP95?: number
	latencyP99?: number
	/** Processing at concurrency 50 with FINISHED_ROWS finished rows in the table. */
	process50WithFinishedPerSec?: number
	errors: string[]
	notes: string[]
}

function payloads(n: number, warm = false): Payload[] {
	const t = wallNow()
	return Array.from({ length: n }, (_, i) => ({ t, i, ...(warm ? { warm } : {}) }))
}

/** Starts the worker child and resolves once it has its consumer up. */
async function startChild(
	system: System,
	mode: 'process' | 'latency',
	concurrency: number,
	count: number,
): Promise<{ child: ChildProcess; report: Promise<ChildReport>; rssIdleMb: number }> {
	const execArgv = ['--import', 'tsx']
	if (process.env.BENCH_CPU_PROF) execArgv.push('--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`)
	const child = fork(CHILD, [system.key, mode, String(concurrency), String(count), String(PROCESS_CAP_MS)], {
		execArgv,
		stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
	})
	let rssIdleMb = Number.NaN
	let onReady: () => void = () => {}
	const ready = new Promise<void>((resolve) => {
		onReady = resolve
	})
	const report = new Promise<ChildReport>((resolve, reject) => {
		child.on('message', (m: ChildReport) => {
			if (m.type === 'ready') {
				rssIdleMb = m.rssIdleMb
				onReady()
			} else resolve(m)
		})
		child.on('exit', (code) => reject(new Error(`worker child exited with ${code} before reporting`)))
	})
	await Promise.race([ready, report])
	return { child, report, rssIdleMb }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
	let timer: NodeJS.Timeout | undefined
	const timeout = new Promise<never>((_, reject) => {
		timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms / 1000} s`)), ms)
	})
	try {
		return await Promise.race([promise, timeout])
	} finally {
		clearTimeout(timer)
	}
}

async function stopChild(child: ChildProcess): Promise<void> {
	if (child.exitCode !== null || child.signalCode !== null) return
	const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
	const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
	await exited
	clearTimeout(timer)
}

async function enqueueUntimed(system: System, n: number): Promise<void> {
	const producer = await system.producer()
	const all = payloads(n)
	for (let i = 0; i < n; i += 5_000) await producer.enqueueMany(all.slice(i, i + 5_000))
	await producer.close()
}

async function measureBulk(system: System): Promise<number> {
	await system.reset()
	const producer = await system.producer()
	await producer.enqueueMany(payloads(10)) // warm the connection and statements
	const batch = payloads(N)
	const start = performance.now()
	await producer.enqueueMany(batch)
	const elapsed = performance.now() - start
	await producer.close()
	return (N / elapsed) * 1000
}

async function measureSingle(system: System): Promise<number> {
	await system.reset()
	const producer = await system.producer()
	for (let i = 0; i < 20; i++) await producer.enqueue({ t: wallNow(), i, warm: true })
	const start = performance.now()
	for (let i = 0; i < SINGLE_N; i++) await producer.enqueue({ t: wallNow(), i })
	const elapsed = performance.now() - start
	await producer.close()
	return (SINGLE_N / elapsed) * 1000
}

async function measureConcurrent(system: System): Promise<number> {
	await system.reset()
	const producer = await system.producer()
	for (let i = 0; i < 20; i++) await producer.enqueue({ t: wallNow(), i, warm: true })
	let next = 0
	const caller = async () => {
		while (next < CONCURRENT_N) {
			const i = next++
			await producer.enqueue({ t: wallNow(), i })
		}
	}
	const start = performance.now()
	await Promise.all(Array.from({ length: CALLERS }, caller))
	const elapsed = performance.now() - start
	await producer.close()
	return (CONCURRENT_N / elapsed) * 1000
}

async function measureProcess(
	system: System,
	concurrency: number,
	finishedRows = 0,
): Promise<{ perSec: number; rssMb: number; rssIdleMb: number; note?: string }> {
	await system.reset()
	if (finishedRows > 0) {
		if (!system.fillFinished) throw new Error(`${system.key} cannot be filled with finished rows`)
		await system.fillFinished(finishedRows)
	}
	await enqueueUntimed(system, N)
	const { child, report, rssIdleMb } = await startChild(system, 'process', concurrency, N)
	try {
		const r = await withTimeout(report, PROCESS_CAP_MS + 120_000, `${system.key} processing`)
		if (r.type !== 'processed') throw new Error(`unexpected report ${r.type}`)
		if (r.duplicates > 0) throw new Error(`${system.key}: ${r.duplicates} jobs ran twice`)
		const perSec = ((r.count - 1) / (r.lastAt - r.firstAt)) * 1000
		const note = r.capped
			? `processing at ${concurrency}${finishedRows ? ' with finished rows' : ''}: stopped after ${PROCESS_CAP_MS / 1000} s with ${r.count} of ${N} jobs run; the rate is over those`
			: undefined
		return { perSec, rssMb: r.rssPeakMb, rssIdleMb, ...(note ? { note } : {}) }
	} finally {
		await stopChild(child)
	}
}

async function measureLatency(system: System): Promise<number[]> {
	await system.reset()
	const { child, report } = await startChild(system, 'latency', 10, LATENCY_N)
	try {
		const producer = await system.producer()
		const enqueueSpaced = async (n: number, warm: boolean) => {
			const t0 = performance.now()
			for (let i = 0; i < n; i++) {
				const wait = t0 + i * LATENCY_SPACING_MS - performance.now()
				if (wait > 0) await sleep(wait)
				await producer.enqueue({ t: wallNow(), i, ...(warm ? { warm } : {}) })
			}
		}
		await enqueueSpaced(20, true)
		await sleep(1_500)
		await enqueueSpaced(LATENCY_N, false)
		const r = await withTimeout(report, 120_000, `${system.key} latency`)
		await producer.close()
		if (r.type !== 'latency') throw new Error(`unexpected report ${r.type}`)
		return r.latencies
	} finally {
		await stopChild(child)
	}
}

async function attempt(result: Result, what: string, fn: () => Promise<void>): Promise<void> {
	try {
		await fn()
	} catch (err) {
		const message = `${what}: ${err instanceof Error ? err.message : String(err)}`
		result.errors.push(message)
		console.error(`  ! ${message}`)
	}
}

const fmt = (n: number | undefined, digits = 0): string =>
	n === undefined || !Number.isFinite(n)
		? '-'
		: n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

async function main(): Promise<void> {
	const systems: System[] = []
	for (const key of SYSTEM_KEYS) if (!only || only.includes(key)) systems.push(await loadSystem(key))
	const results: Record<string, Result> = {}
	const started = new Date()
	console.log(
		`PostgreSQL benchmark${quick ? ' (--quick)' : ''}: ${N} jobs, ${SINGLE_N} single enqueues, ${LATENCY_N} latency jobs; ${os.cpus().length} cores, node ${process.version}`,
	)
	for (const system of systems) {
		const result: Result = { label: system.label, errors: [], notes: [] }
		results[system.key] = result
		console.log(`\n${system.label}`)
		if (measures.has('bulk')) {
			await attempt(result, 'bulk enqueue', async () => {
				result.bulkPerSec = await measureBulk(system)
				console.log(`  bulk enqueue of ${N}: ${fmt(result.bulkPerSec)} jobs/s`)
			})
		}
		if (measures.has('single')) {
			await attempt(result, 'single enqueue', async () => {
				result.singlePerSec = await measureSingle(system)
				console.log(`  one-at-a-time enqueue: ${fmt(result.singlePerSec)} jobs/s`)
			})
		}
		if (measures.has('concurrent')) {
			await attempt(result, 'concurrent enqueue', async () => {
				result.concurrentPerSec = await measureConcurrent(system)
				console.log(
					`  one-at-a-time enqueue, ${CALLERS} concurrent callers: ${fmt(result.concurrentPerSec)} jobs/s`,
				)
			})
		}
		if (measures.has('process')) {
			for (const c of CONCURRENCIES) {
				await attempt(result, `processing at ${c}`, async () => {
					const r = await measureProcess(system, c)
					if (r.note) result.notes.push(r.note)
					if (c === 10) result.process10PerSec = r.perSec
					else {
						result.process50PerSec = r.perSec
						result.rss50Mb = r.rssMb
						result.rss50IdleMb = r.rssIdleMb
					}
					console.log(
						`  processing ${N} at concurrency ${c}: ${fmt(r.perSec)} jobs/s (worker peak RSS ${fmt(r.rssMb)} MB)${r.note ? ` [${r.note}]` : ''}`,
					)
				})
			}
		}
		if (measures.has('latency')) {
			await attempt(result, 'latency', async () => {
				const l = await measureLatency(system)
				result.latencyP50 = percentile(l, 50)
				result.latencyP95 = percentile(l, 95)
				result.latencyP99 = percentile(l, 99)
				console.log(
					`  enqueue-to-start: p50 ${fmt(result.latencyP50, 2)} ms, p95 ${fmt(result.latencyP95, 2)} ms, p99 ${fmt(result.latencyP99, 2)} ms`,
				)
			})
		}
		if (measures.has('finished') && system.fillFinished) {
			await attempt(result, 'processing with finished rows', async () => {
				const r = await measureProcess(system, 50, FINISHED_ROWS)
				if (r.note) result.notes.push(r.note)
				result.process50WithFinishedPerSec = r.perSec
				console.log(
					`  processing ${N} at concurrency 50 with ${fmt(FINISHED_ROWS)} finished rows: ${fmt(r.perSec)} jobs/s`,
				)
			})
		}
	}
	const finishedAt = new Date()
	const table = renderTable(systems, results)
	console.log(`\n${table}`)
	const dir = path.join(import.meta.dirname, '..', 'results')
	mkdirSync(dir, { recursive: true })
	const file = path.join(dir, `postgres-${started.toISOString().replace(/[:.]/g, '-')}.json`)
	writeFileSync(
		file,
		`${JSON.stringify(
			{
				benchmark: 'postgres',
				quick,
				startedAt: started.toISOString(),
				finishedAt: finishedAt.toISOString(),
				machine: {
					cores: os.cpus().length,
					cpu: os.cpus()[0]?.model,
					node: process.version,
					load: os.loadavg(),
				},
				counts: {
					jobs: N,
					single: SINGLE_N,
					concurrent: CONCURRENT_N,
					callers: CALLERS,
					latency: LATENCY_N,
					latencySpacingMs: LATENCY_SPACING_MS,
					finishedRows: FINISHED_ROWS,
				},
				results,
				table,
			},
			null,
			2,
		)}\n`,
	)
	console.log(`\nJSON: ${path.relative(process.cwd(), file)}`)
}

interface Row {
	readonly name: string
	readonly get: (r: Result) => number | undefined
	readonly higherIsBetter: boolean
	readonly digits: number
}

const ROWS: readonly Row[] = [
	{ name: 'bulk enqueue (jobs/s)', get: (r) => r.bulkPerSec, higherIsBetter: true, digits: 0 },
	{ name: 'one-at-a-time enqueue (jobs/s)', get: (r) => r.singlePerSec, higherIsBetter: true, digits: 0 },
	{
		name: `one-at-a-time enqueue, ${CALLERS} concurrent callers (jobs/s)`,
		get: (r) => r.concurrentPerSec,
		higherIsBetter: true,
		digits: 0,
	},
	{
		name: 'processing, concurrency 10 (jobs/s)',
		get: (r) => r.process10PerSec,
		higherIsBetter: true,
		digits: 0,
	},
	{
		name: 'processing, concurrency 50 (jobs/s)',
		get: (r) => r.process50PerSec,
		higherIsBetter: true,
		digits: 0,
	},
	{ name: 'latency p50 (ms)', get: (r) => r.latencyP50, higherIsBetter: false, digits: 2 },
	{ name: 'latency p95 (ms)', get: (r) => r.latencyP95, higherIsBetter: false, digits: 2 },
	{ name: 'latency p99 (ms)', get: (r) => r.latencyP99, higherIsBetter: false, digits: 2 },
	{
		name: 'worker RSS at concurrency 50, peak (MB)',
		get: (r) => r.rss50Mb,
		higherIsBetter: false,
		digits: 0,
	},
	{
		name: 'same process before its worker started (MB)',
		get: (r) => r.rss50IdleMb,
		higherIsBetter: false,
		digits: 0,
	},
	{
		name: `processing c50, ${fmt(FINISHED_ROWS)} finished rows (jobs/s)`,
		get: (r) => r.process50WithFinishedPerSec,
		higherIsBetter: true,
		digits: 0,
	},
]

/** A markdown table of values, then one of ratios: the first system's value / each other's. */
function renderTable(systems: readonly System[], results: Record<string, Result>): string {
	const lines: string[] = []
	const header = ['measure', ...systems.map((s) => s.key)]
	lines.push(`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`)
	for (const row of ROWS) {
		const cells = systems.map((s) => fmt(row.get(results[s.key]!), row.digits))
		if (cells.every((c) => c === '-')) continue
		lines.push(`| ${row.name} | ${cells.join(' | ')} |`)
	}
	const [subject, ...peers] = systems
	if (subject && peers.length > 0) {
		lines.push(
			'',
			`Ratios: ${subject.key}'s value ÷ each other system's (throughput: above 1 is better; latency, RSS: below 1 is better)`,
			'',
		)
		const h = ['measure', ...peers.map((p) => `${subject.key} ÷ ${p.key}`)]
		lines.push(`| ${h.join(' | ')} |`, `| ${h.map(() => '---').join(' | ')} |`)
		for (const row of ROWS) {
			const mine = row.get(results[subject.key]!)
			const cells = peers.map((p) => {
				const theirs = row.get(results[p.key]!)
				return mine === undefined || theirs === undefined ? '-' : `${fmt(mine / theirs, 2)}×`
			})
			if (cells.every((c) => c === '-')) continue
			lines.push(`| ${row.name} | ${cells.join(' | ')} |`)
		}
	}
	const rawResult = results.raw
	if (rawResult && systems.length > 1) {
		lines.push('', 'Share of the raw-SQL ceiling (processing, same run):', '')
		for (const s of systems) {
			if (s.key === 'raw') continue
			const r = results[s.key]!
			const share = (v: number | undefined, c: number | undefined) =>
				v === undefined || c === undefined ? '-' : `${fmt((v / c) * 100, 0)}%`
			lines.push(
				`- ${s.key}: c10 ${share(r.process10PerSec, rawResult.process10PerSec)}, c50 ${share(r.process50PerSec, rawResult.process50PerSec)}`,
			)
		}
	}
	const remarks = systems.flatMap((s) => [
		...results[s.key]!.notes.map((n) => `- ${s.key}: ${n}`),
		...results[s.key]!.errors.map((e) => `- ${s.key} FAILED ${e}`),
	])
	if (remarks.length > 0) lines.push('', 'Notes:', '', ...remarks)
	return lines.join('\n')
}

await main()
