/**
 * Run in a child process by the file bench, so each number comes from a fresh heap:
 * - `build <path> <finished> <pending>`: writes a log of that many finished and pending jobs;
 * - `replay <path>`: opens it and prints the replay time and the RSS it costs;
 * - `rss <jobs>`: enqueues that many small pending jobs into a file log and prints RSS per job.
 * Prints one JSON line.
 */
import { rmSync } from 'node:fs'
import type { JsonText } from '../../src/json.js'
import { silentLogger } from '../../src/logger.js'
import type { NewJob } from '../../src/storage/contract.js'
import { fileLog } from '../../src/storage/file/index.js'

const gc = () => (globalThis as { gc?: () => void }).gc?.()
const [mode, a, b, c] = process.argv.slice(2)
const now = Date.UTC(2026, 0, 1)

function job(i: number): NewJob {
	return {
		id: `job-${i.toString().padStart(9, '0')}`,
		name: 'noop',
		input: `{"i":${i}}` as JsonText,
		priority: 0,
		runAt: now,
		maxAttempts: 3,
		dedupeKey: null,
		dedupeScope: 'pending+active',
		idempotencyKey: null,
		parentId: null,
		backoff: null,
	}
}

async function fill(path: string, finished: number, pending: number): Promise<void> {
	const s = fileLog({ path, durability: 'none', compactAt: 2 ** 40, logger: silentLogger })
	await s.open()
	const batch = 10_000
	for (let i = 0; i < finished; i += batch) {
		const n = Math.min(batch, finished - i)
		await s.enqueue({ jobs: Array.from({ length: n }, (_, k) => job(i + k)), now })
		const claimed = await s.claim({ names: ['noop'], owner: 'bench', limit: n, leaseMs: 30_000, now })
		await s.settle({
			outcomes: claimed.map((j) => ({
				kind: 'completed' as const,
				id: j.id,
				token: j.lease.token,
				output: 'null' as JsonText,
			})),
			now,
		})
	}
	for (let i = 0; i < pending; i += batch) {
		const n = Math.min(batch, pending - i)
		await s.enqueue({ jobs: Array.from({ length: n }, (_, k) => job(finished + i + k)), now })
	}
	await s.close()
}

if (mode === 'build') {
	const t0 = performance.now()
	await fill(a!, Number(b), Number(c))
	console.log(JSON.stringify({ buildMs: performance.now() - t0 }))
} else if (mode === 'replay') {
	gc()
	const before = process.memoryUsage().rss
	const s = fileLog({ path: a!, logger: silentLogger })
	const t0 = performance.now()
	const cpu0 = process.cpuUsage()
	await s.open()
	const ms = performance.now() - t0
	const cpu = process.cpuUsage(cpu0)
	const cpuMs = (cpu.user + cpu.system) / 1000
	gc()
	const after = process.memoryUsage().rss
	const stats = await s.getStats({})
	console.log(
		JSON.stringify({
			ms,
			cpuMs,
			rssMb: (after - before) / 1048576,
			bytes: s.stats.bytes,
			total: stats.total,
		}),
	)
	await s.close()
} else if (mode === 'rss') {
	const jobs = Number(a)
	const path = b!
	const s = fileLog({ path, durability: 'none', compactAt: 2 ** 40, logger: silentLogger })
	await s.open()
	gc()
	const before = process.memoryUsage().rss
	for (let i = 0; i < jobs; i += 10_000) {
		await s.enqueue({ jobs: Array.from({ length: Math.min(10_000, jobs - i) }, (_, k) => job(i + k)), now })
	}
	gc()
	const after = process.memoryUsage().rss
	console.log(JSON.stringify({ jobs, bytesPerJob: (after - before) / jobs }))
	await s.close()
	rmSync(path, { force: true })
}
