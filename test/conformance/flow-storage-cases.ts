/**
 * Flow control in the contract: concurrency keys and windows in `claim`, paused names, throttle,
 * debounce and tick guards in `enqueue`, and jobs enqueued with a completion (`followUps`). Every
 * storage must agree; times are explicit.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { ConcurrencySpec } from '../../src/flow/limits.js'
import type { Storage } from '../../src/storage/contract.js'
import { claimParams, json, newJob, type StorageFactory, T0, type TestStorage } from './harness.js'

const key = (k: string, limit: number, windowMs: number | null = null, rolling = false): ConcurrencySpec => ({
	key: k,
	limit,
	windowMs,
	rolling,
})

export function flowStorageCases(factory: StorageFactory): void {
	let t: TestStorage
	let s: Storage
	const extra: Storage[] = []

	beforeEach(async () => {
		t = await factory.create()
		s = t.storage
	})
	afterEach(async () => {
		for (const e of extra.splice(0)) await e.close()
		await s.close()
		await t.destroy()
	})

	const complete = (id: string, token: string, now = T0) =>
		s.settle({ outcomes: [{ kind: 'completed', id, token, output: json(null) }], now })

	describe('concurrency keys', () => {
		it('claims at most `limit` running jobs per key, across names and claimers, and never blocks others', async () => {
			const a1 = newJob({ concurrency: key('user:a', 1) })
			const a2 = newJob({ concurrency: key('user:a', 1) })
			const a3 = newJob({ name: 'other', concurrency: key('user:a', 1) })
			const b1 = newJob({ concurrency: key('user:b', 2) })
			const b2 = newJob({ concurrency: key('user:b', 2) })
			const b3 = newJob({ concurrency: key('user:b', 2) })
			const free = newJob()
			await s.enqueue({ jobs: [a1, a2, a3, b1, b2, b3, free], now: T0 })
			const first = await s.claim(claimParams({ names: ['work', 'other'], limit: 10 }))
			expect(first.map((j) => j.id).sort()).toEqual([a1.id, b1.id, b2.id, free.id].sort())
			const other = await t.reopen()
			extra.push(other)
			expect(await other.claim(claimParams({ names: ['work', 'other'], owner: 'w2' }))).toEqual([])
			const a = first.find((j) => j.id === a1.id)!
			await complete(a.id, a.lease.token)
			const second = await other.claim(claimParams({ names: ['work', 'other'], owner: 'w2' }))
			expect(second.map((j) => j.id)).toEqual([a2.id])
			// A waiting (suspended) job holds no slot.
			await s.settle({
				outcomes: [{ kind: 'suspended', id: a2.id, token: second[0]!.lease.token, wakeAt: null }],
				now: T0,
			})
			const third = await s.claim(claimParams({ names: ['work', 'other'] }))
			expect(third.map((j) => j.id)).toEqual([a3.id])
		})

		it('limits starts per fixed window', async () => {
			const jobs = Array.from({ length: 5 }, () => newJob({ concurrency: key('api', 2, 1000) }))
			await s.enqueue({ jobs, now: T0 })
			const w1 = await s.claim(claimParams({ now: T0 + 100 }))
			expect(w1.map((j) => j.id)).toEqual([jobs[0]!.id, jobs[1]!.id])
			for (const j of w1) await complete(j.id, j.lease.token, T0 + 100)
			// Finished or not, starts count until the window ends.
			expect(await s.claim(claimParams({ now: T0 + 999 }))).toEqual([])
			const w2 = await s.claim(claimParams({ now: T0 + 1000 }))
			expect(w2.map((j) => j.id)).toEqual([jobs[2]!.id, jobs[3]!.id])
			expect(await s.claim(claimParams({ now: T0 + 1500 }))).toEqual([])
			expect((await s.claim(claimParams({ now: T0 + 2000 }))).map((j) => j.id)).toEqual([jobs[4]!.id])
		})

		it('limits starts per rolling window', async () => {
			const jobs = Array.from({ length: 5 }, () => newJob({ concurrency: key('api', 2, 1000, true) }))
			await s.enqueue({ jobs, now: T0 })
			expect(await s.claim(claimParams({ now: T0, limit: 1 }))).toHaveLength(1)
			expect(await s.claim(claimParams({ now: T0 + 500 }))).toHaveLength(1)
			expect(await s.claim(claimParams({ now: T0 + 999 }))).toEqual([])
			expect(await s.claim(claimParams({ now: T0 + 1000 }))).toHaveLength(1)
			expect(await s.claim(claimParams({ now: T0 + 1499 }))).toEqual([])
			expect(await s.claim(claimParams({ now: T0 + 1500 }))).toHaveLength(1)
		})
	})

	describe('pause', () => {
		it('claims skip paused names until resumed; the pause is durable', async () => {
			const a = newJob({ name: 'a' })
			const b = newJob({ name: 'b' })
			await s.enqueue({ jobs: [a, b], now: T0 })
			await s.setPaused({ name: 'a', paused: true, now: T0 })
			await s.setPaused({ name: 'a', paused: true, now: T0 })
			expect(await s.listPaused()).toEqual(['a'])
			expect((await s.claim(claimParams({ names: ['a', 'b'] }))).map((j) => j.id)).toEqual([b.id])
			const other = await t.reopen()
			extra.push(other)
			expect(await other.listPaused()).toEqual(['a'])
			expect(await other.claim(claimParams({ names: ['a', 'b'] }))).toEqual([])
			await other.setPaused({ name: 'a', paused: false, now: T0 })
			expect(await s.listPaused()).toEqual([])
			expect((await s.claim(claimParams({ names: ['a'] }))).map((j) => j.id)).toEqual([a.id])
		})
	})

	describe('throttle', () => {
		it('discard: drops triggers over the rate', async () => {
			const throttle = { key: 'th', count: 2, perMs: 1000, mode: 'discard' } as const
			const [j1, j2, j3, j4] = Array.from({ length: 4 }, () => newJob({ throttle }))
			const r = await s.enqueue({ jobs: [j1!, j2!, j3!], now: T0 })
			expect(r).toEqual([
				{ status: 'created', id: j1!.id },
				{ status: 'created', id: j2!.id },
				{ status: 'throttled', id: j2!.id },
			])
			expect(await s.getJob({ id: j3!.id })).toBeNull()
			expect(await s.enqueue({ jobs: [j4!], now: T0 + 1000 })).toEqual([{ status: 'created', id: j4!.id }])
		})

		it('queue: delays triggers over the rate', async () => {
			const throttle = { key: 'tq', count: 1, perMs: 1000, mode: 'queue' } as const
			const jobs = Array.from({ length: 3 }, () => newJob({ throttle }))
			await s.enqueue({ jobs, now: T0 })
			const runAts = await Promise.all(jobs.map(async (j) => (await s.getJob({ id: j.id }))!.runAt))
			expect(runAts).toEqual([T0, T0 + 1000, T0 + 2000])
			const late = newJob({ throttle, runAt: T0 + 5000 })
			await s.enqueue({ jobs: [late], now: T0 + 5000 })
			expect((await s.getJob({ id: late.id }))!.runAt).toBe(T0 + 5000)
		})
	})

	describe('debounce', () => {
		it('trailing: one pending job takes the latest input and waits, bounded by the timeout', async () => {
			const debounce = { key: 'idx', delayMs: 1000, timeoutMs: 2500, leading: false }
			const first = newJob({ debounce, input: json(1) })
			expect(await s.enqueue({ jobs: [first], now: T0 })).toEqual([{ status: 'created', id: first.id }])
			expect((await s.getJob({ id: first.id }))!.runAt).toBe(T0 + 1000)
			for (const [at, n, runAt] of [
				[500, 2, 1500],
				[1200, 3, 2200],
				[2000, 4, 2500], // the timeout caps it: 2.5 s after the first trigger
			] as const) {
				const r = await s.enqueue({ jobs: [newJob({ debounce, input: json(n) })], now: T0 + at })
				expect(r).toEqual([{ status: 'debounced', id: first.id }])
				const row = (await s.getJob({ id: first.id }))!
				expect([row.input, row.runAt]).toEqual([json(n), T0 + runAt])
			}
			expect(await s.claim(claimParams({ now: T0 + 2499 }))).toEqual([])
			const [c] = await s.claim(claimParams({ now: T0 + 2500 }))
			expect([c!.id, c!.input]).toEqual([first.id, json(4)])
			// Once it started, a trigger makes a new pending job.
			const next = newJob({ debounce, input: json(5) })
			expect(await s.enqueue({ jobs: [next], now: T0 + 2600 })).toEqual([{ status: 'created', id: next.id }])
			expect((await s.getJob({ id: next.id }))!.runAt).toBe(T0 + 3600)
		})

		it('leading: the first runs at once, later ones within the duration act as trailing', async () => {
			const debounce = { key: 'lead', delayMs: 1000, timeoutMs: null, leading: true }
			const a = newJob({ debounce })
			const b = newJob({ debounce })
			const c = newJob({ debounce })
			const d = newJob({ debounce })
			await s.enqueue({ jobs: [a], now: T0 })
			expect((await s.getJob({ id: a.id }))!.runAt).toBe(T0)
			expect(await s.enqueue({ jobs: [b], now: T0 + 100 })).toEqual([{ status: 'created', id: b.id }])
			expect((await s.getJob({ id: b.id }))!.runAt).toBe(T0 + 1100)
			expect(await s.enqueue({ jobs: [c], now: T0 + 300 })).toEqual([{ status: 'debounced', id: b.id }])
			expect((await s.getJob({ id: b.id }))!.runAt).toBe(T0 + 1300)
			expect((await s.claim(claimParams({ now: T0 + 1300 }))).map((j) => j.id)).toEqual([a.id, b.id])
			// After a quiet period, a trigger leads again.
			expect(await s.enqueue({ jobs: [d], now: T0 + 5000 })).toEqual([{ status: 'created', id: d.id }])
			expect((await s.getJob({ id: d.id }))!.runAt).toBe(T0 + 5000)
		})
	})

	describe('tick guard', () => {
		it('inserts each tick once, even after its job is pruned, and remembers the latest', async () => {
			expect(await s.lastTick({ key: 'report' })).toBeNull()
			const t1 = newJob({ tick: { key: 'report', at: T0 } })
			const again = newJob({ tick: { key: 'report', at: T0 } })
			expect((await s.enqueue({ jobs: [t1, again], now: T0 })).map((r) => r.status)).toEqual([
				'created',
				'existing',
			])
			const [c] = await s.claim(claimParams())
			await complete(c!.id, c!.lease.token)
			await s.prune({ statuses: ['completed'], before: T0 + 1, limit: 10 })
			expect(await s.getJob({ id: t1.id })).toBeNull()
			const other = await t.reopen()
			extra.push(other)
			expect(
				(await other.enqueue({ jobs: [newJob({ tick: { key: 'report', at: T0 } })], now: T0 }))[0]!.status,
			).toBe('existing')
			expect(
				(await other.enqueue({ jobs: [newJob({ tick: { key: 'report', at: T0 + 60_000 } })], now: T0 }))[0]!
					.status,
			).toBe('created')
			expect(await s.lastTick({ key: 'report' })).toBe(T0 + 60_000)
		})
	})

	describe('completion with follow-up jobs', () => {
		it('enqueues follow-up jobs only with an applied completion, once per id', async () => {
			const src = newJob()
			await s.enqueue({ jobs: [src], now: T0 })
			const [c] = await s.claim(claimParams())
			const follow = newJob({ id: `${src.id}>next`, name: 'next' })
			const refused = await s.settle({
				outcomes: [{ kind: 'completed', id: src.id, token: 'wrong', output: json(1), followUps: [follow] }],
				now: T0,
			})
			expect(refused).toEqual([{ id: src.id, ok: false }])
			expect(await s.getJob({ id: follow.id })).toBeNull()
			const ok = await s.settle({
				outcomes: [
					{ kind: 'completed', id: src.id, token: c!.lease.token, output: json(1), followUps: [follow] },
				],
				now: T0,
			})
			expect(ok).toEqual([{ id: src.id, ok: true }])
			expect((await s.getJob({ id: follow.id }))!.status).toBe('pending')
			// The same follow-up presented again (a replayed completion) is not inserted twice.
			expect(await s.enqueue({ jobs: [follow], now: T0 })).toEqual([{ status: 'existing', id: follow.id }])
		})
	})
}
