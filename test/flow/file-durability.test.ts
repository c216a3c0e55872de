/**
 * The file log keeps flow state across a real close and reopen (a restart), both by replaying its
 * records and from a compacted snapshot: paused names, schedule ticks, throttle and concurrency
 * window state, a debounced job's replaced input, and jobs' concurrency keys.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import { silentLogger } from '../../src/logger.js'
import type { Storage } from '../../src/storage/contract.js'
import { fileLog } from '../../src/storage/file/index.js'
import { claimParams, json, newJob, T0 } from '../conformance/harness.js'

const dirs: string[] = []
afterEach(() => {
	for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

for (const compactAt of [64 * 1024 * 1024, 1]) {
	it(`keeps flow state across a restart (${compactAt === 1 ? 'from a snapshot' : 'by replay'})`, async () => {
		const dir = mkdtempSync(join(tmpdir(), 'spool-flow-file-'))
		dirs.push(dir)
		const path = join(dir, 'jobs.log')
		let reopened: ReturnType<typeof fileLog> | null = null
		const open = async (): Promise<Storage> => {
			const s = fileLog({ path, logger: silentLogger, compactAt })
			await s.open()
			reopened = s
			return s
		}
		let s = await open()
		await s.setPaused({ name: 'paused-job', paused: true, now: T0 })
		await s.enqueue({ jobs: [newJob({ name: 'report', tick: { key: 'report', at: T0 } })], now: T0 })
		const throttle = { key: 'api', count: 1, perMs: 60_000, mode: 'discard' } as const
		await s.enqueue({ jobs: [newJob({ name: 'ping', throttle })], now: T0 })
		const debounce = { key: 'idx', delayMs: 10_000, timeoutMs: null, leading: false }
		const indexed = newJob({ name: 'index', debounce, input: json('v1') })
		await s.enqueue({ jobs: [indexed], now: T0 })
		await s.enqueue({ jobs: [newJob({ name: 'index', debounce, input: json('v2') })], now: T0 + 1000 })
		const windowed = { key: 'w', limit: 1, windowMs: 60_000, rolling: true }
		const w1 = newJob({ name: 'win', concurrency: windowed })
		const w2 = newJob({ name: 'win', concurrency: windowed })
		const k1 = newJob({ name: 'one', concurrency: { key: 'k', limit: 1, windowMs: null, rolling: false } })
		const k2 = newJob({ name: 'one', concurrency: { key: 'k', limit: 1, windowMs: null, rolling: false } })
		await s.enqueue({ jobs: [w1, w2, k1, k2], now: T0 })
		const claimed = await s.claim(claimParams({ names: ['win', 'one'] }))
		expect(claimed.map((j) => j.id).sort()).toEqual([w1.id, k1.id].sort())
		await s.settle({
			outcomes: claimed.map((c) => ({
				kind: 'completed' as const,
				id: c.id,
				token: c.lease.token,
				output: json(1),
			})),
			now: T0,
		})
		await s.close()

		s = await open()
		expect(reopened!.openReport?.snapshot).toBe(compactAt === 1)
		expect(await s.listPaused()).toEqual(['paused-job'])
		expect(await s.lastTick({ key: 'report' })).toBe(T0)
		const again = newJob({ name: 'report', tick: { key: 'report', at: T0 } })
		expect((await s.enqueue({ jobs: [again], now: T0 }))[0]!.status).toBe('existing')
		expect((await s.enqueue({ jobs: [newJob({ name: 'ping', throttle })], now: T0 + 10 }))[0]!.status).toBe(
			'throttled',
		)
		const row = (await s.getJob({ id: indexed.id }))!
		expect([row.input, row.runAt]).toEqual([json('v2'), T0 + 11_000])
		expect(
			await s.enqueue({ jobs: [newJob({ name: 'index', debounce, input: json('v3') })], now: T0 + 2000 }),
		).toEqual([{ status: 'debounced', id: indexed.id }])
		// The window is still full until a minute after w1 started; k2 is free now that k1 finished.
		expect((await s.claim(claimParams({ names: ['win', 'one'], now: T0 + 1000 }))).map((j) => j.id)).toEqual([
			k2.id,
		])
		const k3 = newJob({ name: 'one', concurrency: { key: 'k', limit: 1, windowMs: null, rolling: false } })
		await s.enqueue({ jobs: [k3], now: T0 + 1000 })
		// k2 runs: the key is at its limit (its concurrency key survived the restart).
		expect(await s.claim(claimParams({ names: ['one'], now: T0 + 1000 }))).toEqual([])
		expect((await s.claim(claimParams({ names: ['win'], now: T0 + 60_000 }))).map((j) => j.id)).toEqual([
			w2.id,
		])
		await s.close()
	})
}
