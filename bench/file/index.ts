/**
 * `npm run bench:file` (`--quick` for a short run): the file log beside SQLite, the memory storage,
 * BullMQ on Redis (without AOF, and with `appendonly yes` + `appendfsync everysec`, set with CONFIG
 * SET and restored after) and the baseline: a raw loop appending the same binary records with the
 * same group commit and nothing else (bench/file/raw.ts). All in one run, so ratios compare like
 * with like on a machine whose load changes. Measures processing of no-op jobs at concurrency 50,
 * enqueue-to-start latency, the replay time of a log of 1M finished + 100k pending jobs and the RSS
 * of pending jobs. Prints a table; writes JSON to bench/results/.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { fileLog } from '../../src/storage/file/index.js'
import { bullmqProcess, redisUp } from '../core/bullmq.js'
import { latency, memoryKind, processJobs, type StorageKind, sqliteKind } from '../core/spool.js'
import { fmt, gc, type Measurement, tempDir } from '../core/util.js'
import { rawProcess } from './raw.js'

const quick = process.argv.includes('--quick')
const scale = quick ? 0.1 : 1
const n = (full: number) => Math.max(1000, Math.round(full * scale))
const dir = tempDir()
const results: Measurement[] = []
const notes: Record<string, unknown> = {}
const log = (line: string) => process.stderr.write(`${line}\n`)

let files = 0
function fileKind(name: string, durability: 'fsync' | 'none'): StorageKind {
	return {
		name,
		fresh() {
			const path = dir.path(`file-${files++}.log`)
			return { open: () => fileLog({ path, durability }) }
		},
	}
}
const fileFsync = fileKind('file fsync', 'fsync')
const fileNone = fileKind('file none', 'none')
const sqliteFull = sqliteKind('sqlite', dir.path)

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
	log(`  ${scenario.padEnd(18)} ${system.padEnd(22)} ${fmt(value, unit)} ${unit}`)
}

/** Runs bench/file/replay.ts in a fresh process; returns its JSON line. */
function child(args: string[]): Record<string, number> {
	const r = spawnSync(
		process.execPath,
		['--expose-gc', '--import', 'tsx', join(import.meta.dirname, 'replay.ts'), ...args],
		{
			encoding: 'utf8',
			stdio: ['ignore', 'pipe', 'inherit'],
			maxBuffer: 1 << 24,
		},
	)
	if (r.status !== 0) throw new Error(`bench/file/replay.ts ${args[0]} failed (exit ${r.status})`)
	return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

log(
	`spool file log bench${quick ? ' (quick)' : ''}: ${cpus().length} cores, load ${loadavg()[0]!.toFixed(2)}`,
)
const redis = (await redisUp())
	? new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null })
	: null
try {
	const jobs = n(60_000)
	const c = 50
	await measure('process c50', 'raw loop fsync', jobs, () =>
		rawProcess(dir.path('raw-fsync.log'), jobs, c, 'fsync'),
	)
	await measure('process c50', 'file fsync', jobs, () => processJobs(fileFsync, jobs, c))
	await measure('process c50', 'raw loop none', jobs, () =>
		rawProcess(dir.path('raw-none.log'), jobs, c, 'none'),
	)
	await measure('process c50', 'file none', jobs, () => processJobs(fileNone, jobs, c))
	await measure('process c50', 'memory', jobs, () => processJobs(memoryKind, jobs, c))
	await measure('process c50', 'sqlite', n(20_000), () => processJobs(sqliteFull, n(20_000), c))
	if (redis) {
		const [, appendonly] = (await redis.config('GET', 'appendonly')) as string[]
		const [, appendfsync] = (await redis.config('GET', 'appendfsync')) as string[]
		notes.redisBefore = { appendonly, appendfsync }
		try {
			await redis.config('SET', 'appendonly', 'no')
			await measure('process c50', 'bullmq (no AOF)', n(20_000), () => bullmqProcess(n(20_000), c))
			await redis.config('SET', 'appendonly', 'yes')
			await redis.config('SET', 'appendfsync', 'everysec')
			await measure('process c50', 'bullmq (AOF everysec)', n(20_000), () => bullmqProcess(n(20_000), c))
		} finally {
			await redis.config('SET', 'appendfsync', appendfsync!)
			await redis.config('SET', 'appendonly', appendonly!)
		}
	} else {
		log('  Redis does not answer on 127.0.0.1:6379: BullMQ skipped')
	}

	const samples = n(3000)
	for (const kind of [fileFsync, fileNone, memoryKind, sqliteFull]) {
		await measure('start p50', kind.name, samples, async () => (await latency(kind, samples)).p50, 'ms')
	}

	const finished = quick ? 100_000 : 1_000_000
	const pending = quick ? 10_000 : 100_000
	const path = dir.path('replay.log')
	log(
		`  building a log of ${finished.toLocaleString('en-US')} finished + ${pending.toLocaleString('en-US')} pending jobs...`,
	)
	notes.build = child(['build', path, String(finished), String(pending)])
	const replay = child(['replay', path])
	notes.replay = replay
	results.push({
		scenario: `replay ${finished / 1000}k+${pending / 1000}k`,
		system: 'file fsync',
		value: replay.ms!,
		unit: 'ms',
		jobs: finished + pending,
	})
	log(
		`  replay: ${fmt(replay.ms!, 'ms')} ms for ${(replay.bytes! / 1048576).toFixed(1)} MB, RSS +${replay.rssMb!.toFixed(0)} MB`,
	)

	const rssJobs = quick ? 100_000 : 1_000_000
	const rss = child(['rss', String(rssJobs), dir.path('rss.log')])
	notes.rss = rss
	log(`  RSS per pending job: ${rss.bytesPerJob!.toFixed(0)} bytes (${rssJobs.toLocaleString('en-US')} jobs)`)
} finally {
	redis?.disconnect()
	dir.cleanup()
}

const get = (system: string, scenario = 'process c50') =>
	results.find((r) => r.scenario === scenario && r.system === system)?.value
const ratio = (a?: number, b?: number) => (a && b ? `${(a / b).toFixed(2)}x` : '-')
const summary = {
	'file fsync / raw loop fsync': ratio(get('file fsync'), get('raw loop fsync')),
	'file none / raw loop none': ratio(get('file none'), get('raw loop none')),
	'file fsync / bullmq (no AOF)': ratio(get('file fsync'), get('bullmq (no AOF)')),
	'file fsync / bullmq (AOF everysec)': ratio(get('file fsync'), get('bullmq (AOF everysec)')),
	'file fsync / sqlite': ratio(get('file fsync'), get('sqlite')),
	'file fsync / memory': ratio(get('file fsync'), get('memory')),
}
process.stdout.write(
	`\n${results.map((r) => `${r.scenario.padEnd(20)} ${r.system.padEnd(22)} ${fmt(r.value, r.unit).padStart(10)} ${r.unit}`).join('\n')}\n\n${Object.entries(
		summary,
	)
		.map(([k, v]) => `${k.padEnd(36)} ${v}`)
		.join(
			'\n',
		)}\nRSS per pending job: ${(notes.rss as { bytesPerJob: number }).bytesPerJob.toFixed(0)} bytes\n`,
)
const out = join(import.meta.dirname, '..', 'results')
mkdirSync(out, { recursive: true })
const file = join(out, `file-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
writeFileSync(
	file,
	JSON.stringify(
		{ date: new Date().toISOString(), quick, load: loadavg(), results, summary, notes },
		null,
		2,
	),
)
log(`\nwritten to ${file}`)
