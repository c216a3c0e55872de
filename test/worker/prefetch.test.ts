/**
 * `worker.prefetch`: jobs claimed ahead of free slots. Every job still runs once; claimed-ahead jobs
 * are heartbeated while they wait (a lease shorter than their wait does not get them reaped and run
 * twice); close gives them back without counting an attempt. On real SQLite files and PostgreSQL.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ConfigError, createJob, createQueue, silentLogger } from '../../src/index.js'
import type { Storage } from '../../src/storage/contract.js'
import { migrate, postgres } from '../../src/storage/postgres/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { adminPool, DATABASE_URL, freshSchema } from '../postgres/helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'spool-prefetch-'))
const admin = adminPool()
const schemas: string[] = []
afterAll(async () => {
	for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
	await admin.end()
	rmSync(dir, { recursive: true, force: true })
})

const storages: [string, () => Promise<() => Storage>][] = [
	[
		'sqlite',
		async () => {
			const path = join(dir, `${Math.random().toString(36).slice(2)}.db`)
			return () => sqlite({ path })
		},
	],
	[
		'postgres',
		async () => {
			const schema = freshSchema('prefetch')
			schemas.push(schema)
			await migrate({ pool: admin, schema })
			return () => postgres({ connectionString: DATABASE_URL, schema, poolSize: 3 })
		},
	],
]

const input = z.object({ n: z.number() })

describe.each(storages)('prefetch on %s', (_name, open) => {
	it('runs every job once, in slots no wider than the concurrency', async () => {
		const storage = await open()
		const runs = new Map<number, number>()
		let running = 0
		let widest = 0
		const work = createJob({ name: 'work', input }, async ({ n }) => {
			running++
			widest = Math.max(widest, running)
			runs.set(n, (runs.get(n) ?? 0) + 1)
			await new Promise((r) => setImmediate(r))
			running--
		})
		const queue = createQueue({
			jobs: { work },
			storage: storage(),
			logger: silentLogger,
			worker: { concurrency: 4, prefetch: 40, pollInterval: '20ms' },
		})
		await queue.jobs.work.startMany(Array.from({ length: 600 }, (_, n) => ({ input: { n } })))
		await queue.drain()
		expect(runs.size).toBe(600)
		expect([...runs.values()].every((c) => c === 1)).toBe(true)
		expect(widest).toBeLessThanOrEqual(4)
		expect((await queue.getStats()).total.completed).toBe(600)
		await queue.close()
	})

	it("claims ahead by default ('auto') under a backlog of short jobs, and not at all with prefetch 0", async () => {
		const storage = await open()
		/** The most jobs one claim brought back (the storage is observed, not replaced). */
		const widestClaim = async (prefetch: number | undefined): Promise<number> => {
			let widest = 0
			const observed = storage()
			const claim = observed.claim.bind(observed)
			observed.claim = async (params) => {
				const jobs = await claim(params)
				widest = Math.max(widest, jobs.length)
				return jobs
			}
			const settleAndClaim = observed.settleAndClaim?.bind(observed)
			if (settleAndClaim) {
				observed.settleAndClaim = async (params) => {
					const result = await settleAndClaim(params)
					widest = Math.max(widest, result.claimed.length)
					return result
				}
			}
			const queue = createQueue({
				jobs: { work: createJob({ name: 'work', input }, async () => {}) },
				storage: observed,
				logger: silentLogger,
				worker: { concurrency: 2, pollInterval: '20ms', ...(prefetch === undefined ? {} : { prefetch }) },
			})
			await queue.jobs.work.startMany(Array.from({ length: 1500 }, (_, n) => ({ input: { n } })))
			await queue.drain()
			expect((await queue.getStats()).total.completed).toBeGreaterThanOrEqual(1500)
			await queue.close()
			return widest
		}
		expect(await widestClaim(0)).toBeLessThanOrEqual(2)
		expect(await widestClaim(undefined)).toBeGreaterThan(2)
	})

	it("'auto' drops back to 0 once the backlog is gone: an idle worker claims no more than its free slots", async () => {
		const storage = await open()
		const observed = storage()
		// The widest claim asked for after the backlog is gone, by a claim of its own or with a write.
		let widestAsked = 0
		let counting = false
		const asked = (limit: number) => {
			if (counting) widestAsked = Math.max(widestAsked, limit)
		}
		const claim = observed.claim.bind(observed)
		observed.claim = async (params) => {
			asked(params.limit)
			return claim(params)
		}
		const enqueueAndClaim = observed.enqueueAndClaim?.bind(observed)
		if (enqueueAndClaim) {
			observed.enqueueAndClaim = async (params) => {
				asked(params.claim.limit)
				return enqueueAndClaim(params)
			}
		}
		const settleAndClaim = observed.settleAndClaim?.bind(observed)
		if (settleAndClaim) {
			observed.settleAndClaim = async (params) => {
				asked(params.claim.limit)
				return settleAndClaim(params)
			}
		}
		const queue = createQueue({
			jobs: { work: createJob({ name: 'work', input }, async () => {}) },
			storage: observed,
			logger: silentLogger,
			worker: { concurrency: 2, pollInterval: '20ms' },
		})
		await queue.jobs.work.startMany(Array.from({ length: 1500 }, (_, n) => ({ input: { n } })))
		await queue.drain()
		// Let the worker poll and find nothing: the backlog is gone.
		await new Promise((r) => setTimeout(r, 200))
		counting = true
		for (let n = 0; n < 5; n++) await queue.jobs.work.run({ n })
		await new Promise((r) => setTimeout(r, 100))
		await queue.close()
		expect(widestAsked).toBeGreaterThan(0)
		expect(widestAsked).toBeLessThanOrEqual(2)
	})

	it('heartbeats jobs waiting in the buffer, so a short lease does not get them run twice', async () => {
		const storage = await open()
		const runs = new Map<number, number>()
		const slow = createJob({ name: 'slow', input }, async ({ n }) => {
			runs.set(n, (runs.get(n) ?? 0) + 1)
			await new Promise((r) => setTimeout(r, 60))
		})
		const queue = createQueue({
			jobs: { slow },
			storage: storage(),
			logger: silentLogger,
			worker: {
				concurrency: 1,
				prefetch: 10,
				lease: '300ms',
				maintenanceInterval: '50ms',
				pollInterval: '20ms',
			},
		})
		// The last of 11 waits ~600 ms in the buffer: twice its lease.
		await queue.jobs.slow.startMany(Array.from({ length: 11 }, (_, n) => ({ input: { n } })))
		await queue.drain()
		expect([...runs.entries()].sort((a, b) => a[0] - b[0])).toEqual(
			Array.from({ length: 11 }, (_, n) => [n, 1]),
		)
		const page = await queue.listJobs({ name: 'slow', limit: 20 })
		expect(page.jobs.every((j) => j.status === 'completed' && j.attempt === 1)).toBe(true)
		await queue.close()
	})

	it('close gives claimed-ahead jobs back without counting an attempt', async () => {
		const storage = await open()
		let started = 0
		const gate = createJob({ name: 'gate', input }, async () => {
			started++
			await new Promise((r) => setTimeout(r, 100))
		})
		const first = createQueue({
			jobs: { gate },
			storage: storage(),
			logger: silentLogger,
			worker: { concurrency: 1, prefetch: 20, pollInterval: '20ms' },
		})
		await first.jobs.gate.startMany(Array.from({ length: 15 }, (_, n) => ({ input: { n } })))
		while (started === 0) await new Promise((r) => setTimeout(r, 5))
		await first.close({ timeout: '5s' })

		const second = createQueue({ jobs: { gate }, storage: storage(), logger: silentLogger, worker: false })
		const stats = (await second.getStats()).total
		expect(stats.active).toBe(0)
		expect(stats.completed + stats.pending).toBe(15)
		expect(stats.pending).toBeGreaterThan(0)
		const left = await second.listJobs({ name: 'gate', status: 'pending', limit: 20 })
		expect(left.jobs.every((j) => j.attempt === 0)).toBe(true)
		await second.close()

		const third = createQueue({ jobs: { gate }, storage: storage(), logger: silentLogger })
		await third.drain()
		expect((await third.getStats()).total.completed).toBe(15)
		await third.close()
	})
})

it('refuses a prefetch that is not a whole number >= 0 with a ConfigError', () => {
	const noop = createJob({ name: 'noop' }, async () => {})
	for (const prefetch of [-1, 1.5, Number.NaN]) {
		expect(() => createQueue({ jobs: { noop }, logger: silentLogger, worker: { prefetch } })).toThrow(
			ConfigError,
		)
	}
})
