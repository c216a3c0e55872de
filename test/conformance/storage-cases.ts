/**
 * Contract cases: each calls the storage directly, with explicit times, so every storage is held
 * to the same state machine (DESIGN.md) without a worker in the way.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { AttemptError, Storage } from '../../src/storage/contract.js'
import { claimParams, json, newJob, type StorageFactory, T0, type TestStorage } from './harness.js'

function err(attempt: number, message = 'boom'): AttemptError {
	return { attempt, name: 'Error', message, at: T0 }
}

export function storageCases(factory: StorageFactory): void {
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

	describe('enqueue', () => {
		it('stores a job with every field', async () => {
			const job = newJob({
				name: 'email',
				priority: 3,
				maxAttempts: 5,
				input: json({ to: 'a@b.c' }),
				backoff: json({ initial: '1s' }),
			})
			expect(await s.enqueue({ jobs: [job], now: T0 })).toEqual([{ status: 'created', id: job.id }])
			const row = await s.getJob({ id: job.id })
			expect(row).toMatchObject({
				id: job.id,
				name: 'email',
				status: 'pending',
				priority: 3,
				runAt: T0,
				attempt: 0,
				maxAttempts: 5,
				lease: null,
				output: null,
				errors: [],
				parentId: null,
				backoff: json({ initial: '1s' }),
				createdAt: T0,
				finishedAt: null,
			})
			const [claimed] = await s.claim(claimParams({ names: ['email'] }))
			expect(claimed!.backoff).toBe(json({ initial: '1s' }))
			expect(JSON.parse(row!.input)).toEqual({ to: 'a@b.c' })
		})

		it('inserts many in one call', async () => {
			const jobs = Array.from({ length: 1000 }, () => newJob())
			const results = await s.enqueue({ jobs, now: T0 })
			expect(results.every((r) => r.status === 'created')).toBe(true)
			expect((await s.getStats({})).total.pending).toBe(1000)
		})

		it('returns the existing job for a known id or idempotency key', async () => {
			const a = newJob({ idempotencyKey: 'k1' })
			await s.enqueue({ jobs: [a], now: T0 })
			const again = newJob({ idempotencyKey: 'k1' })
			expect(await s.enqueue({ jobs: [again], now: T0 })).toEqual([{ status: 'existing', id: a.id }])
			expect(await s.enqueue({ jobs: [newJob({ id: a.id })], now: T0 })).toEqual([
				{ status: 'existing', id: a.id },
			])
			// Keys are per job name.
			const other = newJob({ name: 'other', idempotencyKey: 'k1' })
			expect((await s.enqueue({ jobs: [other], now: T0 }))[0]!.status).toBe('created')
			// And still hold after the first finished.
			const [c] = await s.claim(claimParams())
			await s.settle({
				outcomes: [{ kind: 'completed', id: c!.id, token: c!.lease.token, output: json(1) }],
				now: T0,
			})
			expect(await s.enqueue({ jobs: [newJob({ idempotencyKey: 'k1' })], now: T0 })).toEqual([
				{ status: 'existing', id: a.id },
			])
		})

		it('creates the new jobs of a batch that also holds a known id', async () => {
			const a = newJob()
			await s.enqueue({ jobs: [a], now: T0 })
			const b = newJob()
			const c = newJob()
			expect(await s.enqueue({ jobs: [b, newJob({ id: a.id }), c], now: T0 })).toEqual([
				{ status: 'created', id: b.id },
				{ status: 'existing', id: a.id },
				{ status: 'created', id: c.id },
			])
			expect((await s.getStats({})).total.pending).toBe(3)
		})

		it('creates an id given twice in one batch once, the second finding the first', async () => {
			const a = newJob()
			const b = newJob()
			expect(await s.enqueue({ jobs: [a, b, newJob({ id: a.id })], now: T0 })).toEqual([
				{ status: 'created', id: a.id },
				{ status: 'created', id: b.id },
				{ status: 'existing', id: a.id },
			])
			expect((await s.getStats({})).total.pending).toBe(2)
		})

		it('applies keys within one batch too', async () => {
			const results = await s.enqueue({
				jobs: [
					newJob({ idempotencyKey: 'x' }),
					newJob({ idempotencyKey: 'x' }),
					newJob({ dedupeKey: 'd' }),
					newJob({ dedupeKey: 'd' }),
				],
				now: T0,
			})
			expect(results.map((r) => r.status)).toEqual(['created', 'existing', 'created', 'deduped'])
		})
	})

	describe('claim', () => {
		it('claims in order: priority, then runAt, then enqueue order', async () => {
			const a = newJob({ priority: 5 })
			const b = newJob({ priority: 1, runAt: T0 - 10 })
			const c = newJob({ priority: 1, runAt: T0 - 20 })
			const d = newJob({ priority: 1, runAt: T0 - 20 })
			const e = newJob({ priority: 0, runAt: T0 + 1000 }) // not due yet
			await s.enqueue({ jobs: [a, b, c], now: T0 - 30 })
			await s.enqueue({ jobs: [d, e], now: T0 - 30 })
			const claimed = await s.claim(claimParams({ limit: 10 }))
			expect(claimed.map((j) => j.id)).toEqual([c.id, d.id, b.id, a.id])
			const later = await s.claim(claimParams({ now: T0 + 1000 }))
			expect(later.map((j) => j.id)).toEqual([e.id])
		})

		it('takes only the names asked for, up to the limit, and gives a lease', async () => {
			await s.enqueue({
				jobs: [newJob({ name: 'a' }), newJob({ name: 'b' }), newJob({ name: 'a' }), newJob({ name: 'a' })],
				now: T0,
			})
			const claimed = await s.claim(claimParams({ names: ['a'], limit: 2, owner: 'me', leaseMs: 5000 }))
			expect(claimed).toHaveLength(2)
			for (const j of claimed) {
				expect(j.name).toBe('a')
				expect(j.attempt).toBe(1)
				expect(j.lease.owner).toBe('me')
				expect(j.lease.expiresAt).toBe(T0 + 5000)
				expect(j.lease.token.length).toBeGreaterThan(8)
				expect((await s.getJob({ id: j.id }))!.status).toBe('active')
			}
			expect(await s.claim(claimParams({ names: ['c'] }))).toEqual([])
		})

		it('keeps claim order across the names of one claim', async () => {
			const a1 = newJob({ name: 'a', priority: 1 })
			const b0 = newJob({ name: 'b', priority: 0, runAt: T0 - 10 })
			const a0 = newJob({ name: 'a', priority: 0, runAt: T0 - 5 })
			const b1 = newJob({ name: 'b', priority: 1 })
			const c0 = newJob({ name: 'c', priority: 0 })
			const aLater = newJob({ name: 'a', priority: 0, runAt: T0 + 100 })
			await s.enqueue({ jobs: [a1, b0, a0, b1, c0, aLater], now: T0 - 20 })
			const first = await s.claim(claimParams({ names: ['a', 'b'], limit: 3 }))
			expect(first.map((j) => j.id)).toEqual([b0.id, a0.id, a1.id])
			const rest = await s.claim(claimParams({ names: ['b', 'a'], limit: 10 }))
			expect(rest.map((j) => j.id)).toEqual([b1.id])
		})

		it('never hands one job to two claimers at once', async () => {
			await s.enqueue({ jobs: Array.from({ length: 200 }, () => newJob()), now: T0 })
			const other = await t.reopen()
			extra.push(other)
			const results = await Promise.all(
				Array.from({ length: 8 }, (_, i) =>
					(i % 2 ? other : s).claim(claimParams({ limit: 30, owner: `w${i}` })),
				),
			)
			const ids = results.flat().map((j) => j.id)
			expect(new Set(ids).size).toBe(ids.length)
			expect(ids.length).toBe(200)
		})

		it('issues a new token on every claim', async () => {
			const job = newJob()
			await s.enqueue({ jobs: [job], now: T0 })
			const [first] = await s.claim(claimParams({ leaseMs: 10 }))
			await s.reap({ now: T0 + 20, limit: 100 })
			const [second] = await s.claim(claimParams({ now: T0 + 20 }))
			expect(second!.id).toBe(job.id)
			expect(second!.attempt).toBe(2)
			expect(second!.lease.token).not.toBe(first!.lease.token)
		})
	})

	describe('leases and fencing', () => {
		it('refuses outcomes, heartbeats and steps from a stale token', async () => {
			await s.enqueue({ jobs: [newJob()], now: T0 })
			const [stale] = await s.claim(claimParams({ leaseMs: 100, owner: 'paused' }))
			await s.reap({ now: T0 + 200, limit: 100 })
			const [fresh] = await s.claim(claimParams({ now: T0 + 200, owner: 'other' }))
			expect(fresh!.id).toBe(stale!.id)
			const refused = await s.settle({
				outcomes: [{ kind: 'completed', id: stale!.id, token: stale!.lease.token, output: json('stale') }],
				now: T0 + 300,
			})
			expect(refused).toEqual([{ id: stale!.id, ok: false }])
			expect(
				await s.heartbeat({
					leases: [{ id: stale!.id, token: stale!.lease.token }],
					leaseMs: 1000,
					now: T0 + 300,
				}),
			).toEqual([stale!.id])
			expect(
				await s.saveStep({
					jobId: stale!.id,
					token: stale!.lease.token,
					stepId: 'run:x',
					name: 'x',
					state: 'completed',
					output: json(1),
					error: null,
					now: T0 + 300,
				}),
			).toBe(false)
			const row = await s.getJob({ id: stale!.id })
			expect(row!.status).toBe('active')
			expect(row!.lease!.owner).toBe('other')
			const ok = await s.settle({
				outcomes: [{ kind: 'completed', id: fresh!.id, token: fresh!.lease.token, output: json('fresh') }],
				now: T0 + 300,
			})
			expect(ok).toEqual([{ id: fresh!.id, ok: true }])
			expect((await s.getJob({ id: fresh!.id }))!.output).toBe(json('fresh'))
		})

		it('heartbeat extends the lease so the reaper leaves the job alone', async () => {
			await s.enqueue({ jobs: [newJob()], now: T0 })
			const [j] = await s.claim(claimParams({ leaseMs: 1000 }))
			expect(
				await s.heartbeat({ leases: [{ id: j!.id, token: j!.lease.token }], leaseMs: 1000, now: T0 + 900 }),
			).toEqual([])
			const r = await s.reap({ now: T0 + 1500, limit: 100 })
			expect(r.requeued).toEqual([])
			expect((await s.getJob({ id: j!.id }))!.lease!.expiresAt).toBe(T0 + 1900)
		})
	})

	describe('reaper', () => {
		it('gives expired jobs back with the attempt counted, and kills those with none left', async () => {
			const a = newJob({ maxAttempts: 3 })
			const b = newJob({ maxAttempts: 1 })
			await s.enqueue({ jobs: [a, b], now: T0 })
			await s.claim(claimParams({ leaseMs: 100 }))
			expect((await s.reap({ now: T0 + 99, limit: 100 })).requeued).toEqual([])
			const r = await s.reap({ now: T0 + 100, limit: 100 })
			expect(r.requeued).toEqual([a.id])
			expect(r.dead).toEqual([b.id])
			const ra = await s.getJob({ id: a.id })
			expect(ra).toMatchObject({ status: 'pending', attempt: 1, lease: null })
			expect(ra!.errors[0]!.name).toBe('LeaseLostError')
			expect((await s.getJob({ id: b.id }))!.status).toBe('dead')
			const [again] = await s.claim(claimParams({ now: T0 + 100 }))
			expect(again).toMatchObject({ id: a.id, attempt: 2 })
		})
	})

	describe('settle', () => {
		it('completes, retries later, and dead-letters', async () => {
			const [a, b, c] = [newJob(), newJob(), newJob()]
			await s.enqueue({ jobs: [a, b, c], now: T0 })
			const claimed = await s.claim(claimParams())
			const tok = (id: string) => claimed.find((j) => j.id === id)!.lease.token
			const results = await s.settle({
				outcomes: [
					{ kind: 'completed', id: a.id, token: tok(a.id), output: json({ ok: 1 }) },
					{ kind: 'retry', id: b.id, token: tok(b.id), error: err(1), runAt: T0 + 5000 },
					{ kind: 'dead', id: c.id, token: tok(c.id), error: err(1, 'fatal') },
				],
				now: T0 + 10,
			})
			expect(results.every((r) => r.ok)).toBe(true)
			expect(await s.getJob({ id: a.id })).toMatchObject({
				status: 'completed',
				output: json({ ok: 1 }),
				finishedAt: T0 + 10,
				lease: null,
			})
			expect(await s.getJob({ id: b.id })).toMatchObject({ status: 'pending', runAt: T0 + 5000, attempt: 1 })
			expect((await s.getJob({ id: b.id }))!.errors).toEqual([err(1)])
			expect(await s.getJob({ id: c.id })).toMatchObject({ status: 'dead', finishedAt: T0 + 10 })
			expect(await s.claim(claimParams({ now: T0 + 4999 }))).toEqual([])
			expect((await s.claim(claimParams({ now: T0 + 5000 })))[0]).toMatchObject({ id: b.id, attempt: 2 })
		})

		it('deletes a completed job when asked to', async () => {
			await s.enqueue({ jobs: [newJob()], now: T0 })
			const [j] = await s.claim(claimParams())
			await s.settle({
				outcomes: [{ kind: 'completed', id: j!.id, token: j!.lease.token, output: json(1), remove: true }],
				now: T0,
			})
			expect(await s.getJob({ id: j!.id })).toBeNull()
			expect((await s.getStats({})).total.completed).toBe(0)
		})

		it('releases without counting the attempt', async () => {
			await s.enqueue({ jobs: [newJob()], now: T0 })
			const [j] = await s.claim(claimParams())
			await s.settle({ outcomes: [{ kind: 'released', id: j!.id, token: j!.lease.token }], now: T0 + 5 })
			expect(await s.getJob({ id: j!.id })).toMatchObject({ status: 'pending', attempt: 0, lease: null })
			expect((await s.claim(claimParams({ now: T0 + 5 })))[0]).toMatchObject({ id: j!.id, attempt: 1 })
		})

		it('suspends to waiting, and wakes by time or by call', async () => {
			const [a, b] = [newJob(), newJob()]
			await s.enqueue({ jobs: [a, b], now: T0 })
			const claimed = await s.claim(claimParams())
			await s.settle({
				outcomes: claimed.map((j) => ({
					kind: 'suspended' as const,
					id: j.id,
					token: j.lease.token,
					wakeAt: j.id === a.id ? T0 + 1000 : null,
				})),
				now: T0,
			})
			expect(await s.getJob({ id: a.id })).toMatchObject({ status: 'waiting', attempt: 0, lease: null })
			expect(await s.claim(claimParams({ now: T0 + 999 }))).toEqual([])
			expect((await s.reap({ now: T0 + 999, limit: 100 })).woken).toEqual([])
			expect((await s.reap({ now: T0 + 1000, limit: 100 })).woken).toEqual([a.id])
			expect(await s.wake({ ids: [b.id, a.id, 'nope'], now: T0 + 1000 })).toEqual([b.id])
			const again = await s.claim(claimParams({ now: T0 + 1000 }))
			expect(again.map((j) => j.attempt)).toEqual([1, 1])
		})

		it('wakes a waiting parent when its child finishes', async () => {
			const parent = newJob({ name: 'parent' })
			await s.enqueue({ jobs: [parent], now: T0 })
			const [p] = await s.claim(claimParams({ names: ['parent'] }))
			const child = newJob({ name: 'child', parentId: parent.id })
			await s.enqueue({ jobs: [child], now: T0 })
			await s.settle({
				outcomes: [{ kind: 'suspended', id: p!.id, token: p!.lease.token, wakeAt: null }],
				now: T0,
			})
			const [c] = await s.claim(claimParams({ names: ['child'] }))
			expect(c!.parentId).toBe(parent.id)
			await s.settle({
				outcomes: [{ kind: 'completed', id: c!.id, token: c!.lease.token, output: json(7) }],
				now: T0 + 1,
			})
			expect((await s.getJob({ id: parent.id }))!.status).toBe('pending')
			const page = await s.listJobs({ parentId: parent.id, limit: 10 })
			expect(page.jobs.map((j) => j.id)).toEqual([child.id])
		})

		it('appends log lines, bounded', async () => {
			await s.enqueue({ jobs: [newJob()], now: T0 })
			const [j] = await s.claim(claimParams())
			await s.settle({ outcomes: [], logs: new Map([[j!.id, ['one', 'two']]]), now: T0 })
			await s.settle({
				outcomes: [{ kind: 'completed', id: j!.id, token: j!.lease.token, output: json(null) }],
				logs: new Map([[j!.id, ['three']]]),
				now: T0,
			})
			expect((await s.getJob({ id: j!.id }))!.logs).toEqual(['one', 'two', 'three'])
			await s.settle({
				outcomes: [],
				logs: new Map([[j!.id, Array.from({ length: 300 }, (_, i) => `l${i}`)]]),
				now: T0,
			})
			const logs = (await s.getJob({ id: j!.id }))!.logs
			expect(logs.length).toBeLessThanOrEqual(100)
			expect(logs[logs.length - 1]).toBe('l299')
		})
	})

	describe('settleAndClaim (optional)', () => {
		// Optional in the contract: a storage without it is skipped here, visibly, and its workers
		// settle and claim in two calls (the queue cases cover that).
		it('settles a batch, then claims in claim order, seeing what the settle changed', async (ctx) => {
			if (!s.settleAndClaim) return ctx.skip('this storage has no settleAndClaim')
			const [a, b] = [newJob({ priority: 1 }), newJob({ priority: 1 })]
			const c = newJob({ priority: 2 })
			const first = newJob({ dedupeKey: 'k', dedupeScope: 'pending' })
			await s.enqueue({ jobs: [a, b, first], now: T0 })
			const held = await s.claim(claimParams({ limit: 3 }))
			expect(held.map((j) => j.id).sort()).toEqual([a.id, b.id, first.id].sort())
			const tok = (id: string) => held.find((j) => j.id === id)!.lease.token
			// Queued behind the active holder of its key: not claimable until `first` finishes.
			const second = newJob({ dedupeKey: 'k', dedupeScope: 'pending' })
			await s.enqueue({ jobs: [c, second], now: T0 })
			const r = await s.settleAndClaim({
				outcomes: [
					{ kind: 'completed', id: a.id, token: tok(a.id), output: json(1) },
					{ kind: 'retry', id: b.id, token: tok(b.id), error: err(1), runAt: T0 + 10 },
					{ kind: 'completed', id: first.id, token: tok(first.id), output: json(2) },
					{ kind: 'completed', id: c.id, token: 'not-its-token', output: json(3) },
				],
				now: T0 + 10,
				claim: { names: ['work'], owner: 'w2', limit: 10, leaseMs: 1000 },
			})
			expect(r.settled).toEqual([
				{ id: a.id, ok: true },
				{ id: b.id, ok: true },
				{ id: first.id, ok: true },
				{ id: c.id, ok: false },
			])
			// second's key is free and b is due again (retry at T0 + 10): both claimed with c, in claim
			// order (priority 0, 1, 2).
			expect(r.claimed.map((j) => j.id)).toEqual([second.id, b.id, c.id])
			expect(r.claimed[1]).toMatchObject({ attempt: 2, lease: { owner: 'w2', expiresAt: T0 + 1010 } })
			expect(await s.getJob({ id: a.id })).toMatchObject({ status: 'completed', output: json(1) })
			expect(await s.getJob({ id: c.id })).toMatchObject({ status: 'active', attempt: 1 })
		})

		it('claims at most the limit, and nothing with limit 0', async (ctx) => {
			if (!s.settleAndClaim) return ctx.skip('this storage has no settleAndClaim')
			const jobs = [newJob(), newJob(), newJob()]
			await s.enqueue({ jobs, now: T0 })
			const [held] = await s.claim(claimParams({ limit: 1 }))
			const done = { kind: 'completed', id: held!.id, token: held!.lease.token, output: json(null) } as const
			const none = await s.settleAndClaim({
				outcomes: [done],
				now: T0,
				claim: { names: ['work'], owner: 'w1', limit: 0, leaseMs: 1000 },
			})
			expect(none).toEqual({ settled: [{ id: held!.id, ok: true }], claimed: [] })
			const one = await s.settleAndClaim({
				outcomes: [],
				now: T0,
				claim: { names: ['work'], owner: 'w1', limit: 1, leaseMs: 1000 },
			})
			expect(one.claimed.map((j) => j.id)).toEqual([jobs[1]!.id])
		})
	})

	describe('enqueueAndClaim (optional)', () => {
		it('enqueues, then claims in claim order among all due jobs, in one call', async (ctx) => {
			if (!s.enqueueAndClaim) return ctx.skip('this storage has no enqueueAndClaim')
			const older = newJob({ priority: 1 })
			await s.enqueue({ jobs: [older], now: T0 })
			const urgent = newJob({ priority: 0 })
			const later = newJob({ runAt: T0 + 1000 })
			const again = newJob({ id: older.id })
			const r = await s.enqueueAndClaim({
				jobs: [urgent, later, again],
				now: T0,
				claim: { names: ['work'], owner: 'w1', limit: 5, leaseMs: 1000 },
			})
			expect(r.results).toEqual([
				{ status: 'created', id: urgent.id },
				{ status: 'created', id: later.id },
				{ status: 'existing', id: older.id },
			])
			// The new job first (priority 0), then the older one; the one not due yet stays pending.
			expect(r.claimed.map((j) => j.id)).toEqual([urgent.id, older.id])
			expect(r.claimed[0]).toMatchObject({ attempt: 1, lease: { owner: 'w1', expiresAt: T0 + 1000 } })
			expect(await s.getJob({ id: urgent.id })).toMatchObject({ status: 'active', attempt: 1 })
			expect(await s.getJob({ id: later.id })).toMatchObject({ status: 'pending', attempt: 0 })
			// The lease is a real one: the token settles the job, and a claim finds nothing more due.
			const token = r.claimed[0]!.lease.token
			expect(
				await s.settle({ outcomes: [{ kind: 'completed', id: urgent.id, token, output: json(1) }], now: T0 }),
			).toEqual([{ id: urgent.id, ok: true }])
			expect(await s.claim(claimParams())).toEqual([])
		})

		it('claims at most the limit, nothing with limit 0, and no job of a paused name', async (ctx) => {
			if (!s.enqueueAndClaim) return ctx.skip('this storage has no enqueueAndClaim')
			const claim = { names: ['work'], owner: 'w1', limit: 0, leaseMs: 1000 }
			const none = await s.enqueueAndClaim({ jobs: [newJob()], now: T0, claim })
			expect(none.claimed).toEqual([])
			const jobs = [newJob(), newJob()]
			const one = await s.enqueueAndClaim({ jobs, now: T0, claim: { ...claim, limit: 1 } })
			expect(one.claimed).toHaveLength(1)
			await s.setPaused({ name: 'work', paused: true, now: T0 })
			const paused = await s.enqueueAndClaim({ jobs: [newJob()], now: T0, claim: { ...claim, limit: 10 } })
			expect(paused).toMatchObject({ results: [{ status: 'created' }], claimed: [] })
		})
	})

	describe('dead letters', () => {
		it('replays one by id and all of a name, with attempts reset', async () => {
			const jobs = [
				newJob({ maxAttempts: 1 }),
				newJob({ maxAttempts: 1 }),
				newJob({ name: 'other', maxAttempts: 1 }),
			]
			await s.enqueue({ jobs, now: T0 })
			const claimed = await s.claim(claimParams({ names: ['work', 'other'] }))
			await s.settle({
				outcomes: claimed.map((j) => ({
					kind: 'dead' as const,
					id: j.id,
					token: j.lease.token,
					error: err(1),
				})),
				now: T0,
			})
			expect((await s.getStats({})).total.dead).toBe(3)
			expect(await s.replay({ ids: [jobs[0]!.id, 'missing'], now: T0 + 1 })).toEqual([jobs[0]!.id])
			expect(await s.getJob({ id: jobs[0]!.id })).toMatchObject({
				status: 'pending',
				attempt: 0,
				finishedAt: null,
			})
			expect(await s.replay({ name: 'work', now: T0 + 2 })).toEqual([jobs[1]!.id])
			expect((await s.getJob({ id: jobs[2]!.id }))!.status).toBe('dead')
			// Replaying something not dead does nothing.
			expect(await s.replay({ ids: [jobs[0]!.id], now: T0 + 3 })).toEqual([])
		})
	})

	describe('dedupe', () => {
		it("scope 'pending+active' holds back duplicates while one waits or runs", async () => {
			const a = newJob({ dedupeKey: 'k' })
			expect((await s.enqueue({ jobs: [a], now: T0 }))[0]!.status).toBe('created')
			expect(await s.enqueue({ jobs: [newJob({ dedupeKey: 'k' })], now: T0 })).toEqual([
				{ status: 'deduped', id: a.id },
			])
			const [j] = await s.claim(claimParams())
			expect(await s.enqueue({ jobs: [newJob({ dedupeKey: 'k' })], now: T0 })).toEqual([
				{ status: 'deduped', id: a.id },
			])
			// Another name is another key space.
			expect((await s.enqueue({ jobs: [newJob({ name: 'x', dedupeKey: 'k' })], now: T0 }))[0]!.status).toBe(
				'created',
			)
			await s.settle({
				outcomes: [{ kind: 'completed', id: j!.id, token: j!.lease.token, output: json(1) }],
				now: T0,
			})
			expect((await s.enqueue({ jobs: [newJob({ dedupeKey: 'k' })], now: T0 }))[0]!.status).toBe('created')
		})

		it("scope 'pending' lets one wait behind one running, and keeps it waiting until that one ends", async () => {
			const a = newJob({ dedupeKey: 'k', dedupeScope: 'pending' })
			await s.enqueue({ jobs: [a], now: T0 })
			const [running] = await s.claim(claimParams())
			const b = newJob({ dedupeKey: 'k', dedupeScope: 'pending' })
			expect((await s.enqueue({ jobs: [b], now: T0 }))[0]).toEqual({ status: 'created', id: b.id })
			expect(
				await s.enqueue({ jobs: [newJob({ dedupeKey: 'k', dedupeScope: 'pending' })], now: T0 }),
			).toEqual([{ status: 'deduped', id: b.id }])
			// Single-flight: b is not claimable while a runs.
			expect(await s.claim(claimParams())).toEqual([])
			await s.settle({
				outcomes: [{ kind: 'completed', id: running!.id, token: running!.lease.token, output: json(1) }],
				now: T0,
			})
			expect((await s.claim(claimParams())).map((j) => j.id)).toEqual([b.id])
		})
	})

	describe('claimOrEnqueue', () => {
		it('claims a new job, queues one behind it, then dedupes', async () => {
			const params = (id: string, scope: 'pending' | 'pending+active' = 'pending') => ({
				job: { ...newJob({ id, dedupeKey: 'sync:u1', dedupeScope: scope }), dedupeKey: 'sync:u1' },
				owner: 'web',
				leaseMs: 1000,
				now: T0,
			})
			const first = await s.claimOrEnqueue(params('c1'))
			expect(first.status).toBe('claimed')
			if (first.status !== 'claimed') return
			expect(first.job).toMatchObject({ id: 'c1', attempt: 1 })
			expect((await s.getJob({ id: 'c1' }))!.status).toBe('active')
			expect(await s.claimOrEnqueue(params('c2'))).toEqual({ status: 'enqueued', id: 'c2' })
			expect(await s.claimOrEnqueue(params('c3'))).toEqual({ status: 'deduped', id: 'c2' })
			expect(await s.claimOrEnqueue(params('c4', 'pending+active'))).toEqual({ status: 'deduped', id: 'c2' })
			await s.settle({
				outcomes: [{ kind: 'completed', id: 'c1', token: first.job.lease.token, output: json(1) }],
				now: T0,
			})
			const next = await s.claimOrEnqueue(params('c5'))
			expect(next.status === 'claimed' && next.job.id).toBe('c2')
			expect(await s.getJob({ id: 'c5' })).toBeNull()
		})

		it('leaves a job kept under the same id or idempotency key alone', async () => {
			const job = (id: string, idempotencyKey: string | null = null) => ({
				...newJob({ id, dedupeKey: 'k', idempotencyKey }),
				dedupeKey: 'k',
			})
			const first = await s.claimOrEnqueue({ job: job('a', 'once'), owner: 'o', leaseMs: 1000, now: T0 })
			if (first.status !== 'claimed') throw new Error('expected a claim')
			await s.settle({
				outcomes: [{ kind: 'completed', id: 'a', token: first.job.lease.token, output: json(1) }],
				now: T0,
			})
			expect(await s.claimOrEnqueue({ job: job('a'), owner: 'o', leaseMs: 1000, now: T0 })).toEqual({
				status: 'deduped',
				id: 'a',
			})
			expect(await s.claimOrEnqueue({ job: job('b', 'once'), owner: 'o', leaseMs: 1000, now: T0 })).toEqual({
				status: 'deduped',
				id: 'a',
			})
			expect((await s.getJob({ id: 'a' }))!).toMatchObject({ status: 'completed', attempt: 1 })
			expect(await s.getJob({ id: 'b' })).toBeNull()
		})

		it("with scope 'pending+active' does not queue behind a running one", async () => {
			const job = (id: string) => ({ ...newJob({ id, dedupeKey: 'k' }), dedupeKey: 'k' })
			await s.claimOrEnqueue({ job: job('a'), owner: 'o', leaseMs: 1000, now: T0 })
			expect(await s.claimOrEnqueue({ job: job('b'), owner: 'o', leaseMs: 1000, now: T0 })).toEqual({
				status: 'deduped',
				id: 'a',
			})
		})
	})

	describe('cancel', () => {
		it('cancels pending, active and waiting jobs, and says when it cannot', async () => {
			const [a, b, c] = [newJob(), newJob(), newJob({ name: 'other' })]
			await s.enqueue({ jobs: [a, b, c], now: T0 })
			expect(await s.cancel({ id: a.id, now: T0 })).toEqual({ status: 'cancelled', previous: 'pending' })
			const [j] = await s.claim(claimParams())
			expect(j!.id).toBe(b.id)
			expect(await s.cancel({ id: b.id, now: T0 })).toEqual({ status: 'cancelled', previous: 'active' })
			// The worker's outcome is refused, and its heartbeat reports the lease lost.
			expect(
				await s.settle({
					outcomes: [{ kind: 'completed', id: b.id, token: j!.lease.token, output: json(1) }],
					now: T0,
				}),
			).toEqual([{ id: b.id, ok: false }])
			expect(
				await s.heartbeat({ leases: [{ id: b.id, token: j!.lease.token }], leaseMs: 1000, now: T0 }),
			).toEqual([b.id])
			const [k] = await s.claim(claimParams({ names: ['other'] }))
			await s.settle({
				outcomes: [{ kind: 'suspended', id: k!.id, token: k!.lease.token, wakeAt: null }],
				now: T0,
			})
			expect(await s.cancel({ id: c.id, now: T0 })).toEqual({ status: 'cancelled', previous: 'waiting' })
			expect(await s.cancel({ id: c.id, now: T0 })).toEqual({ status: 'finished', current: 'cancelled' })
			expect(await s.cancel({ id: 'nope', now: T0 })).toEqual({ status: 'not-found' })
			expect(await s.claim(claimParams({ names: ['work', 'other'] }))).toEqual([])
			expect((await s.getStats({})).total.cancelled).toBe(3)
		})
	})

	describe('steps', () => {
		it('records steps under the lease; completed is final, failed may start again', async () => {
			await s.enqueue({ jobs: [newJob()], now: T0 })
			const [j] = await s.claim(claimParams())
			const save = (stepId: string, state: 'started' | 'completed' | 'failed', output: unknown = null) =>
				s.saveStep({
					jobId: j!.id,
					token: j!.lease.token,
					stepId,
					name: stepId.split(':')[1]!,
					state,
					output: output === null ? null : json(output),
					error: state === 'failed' ? err(1) : null,
					now: T0,
				})
			expect(await save('once:mail', 'started')).toBe(true)
			expect(await save('run:fetch', 'completed', { v: 1 })).toBe(true)
			expect(await save('run:fetch', 'completed', { v: 2 })).toBe(true)
			expect(await save('once:pay', 'failed')).toBe(true)
			expect(await save('once:pay', 'started')).toBe(true)
			const steps = await s.getSteps({ jobId: j!.id })
			expect(steps.map((x) => [x.stepId, x.state])).toEqual([
				['once:mail', 'started'],
				['run:fetch', 'completed'],
				['once:pay', 'started'],
			])
			expect(steps[1]!.output).toBe(json({ v: 1 }))
			expect(await s.getSteps({ jobId: 'other' })).toEqual([])
		})
	})

	describe('inspection', () => {
		it('counts by state and name, and pages newest first', async () => {
			const jobs = Array.from({ length: 7 }, (_, i) => newJob({ name: i % 2 ? 'odd' : 'even' }))
			for (const job of jobs) await s.enqueue({ jobs: [job], now: T0 })
			await s.claim(claimParams({ names: ['odd'], limit: 1 }))
			const stats = await s.getStats({})
			expect(stats.total).toMatchObject({ pending: 6, active: 1 })
			expect(stats.byName.odd).toMatchObject({ pending: 2, active: 1, completed: 0 })
			expect(stats.byName.even).toMatchObject({ pending: 4 })
			expect(Object.keys((await s.getStats({ name: 'odd' })).byName)).toEqual(['odd'])
			const page1 = await s.listJobs({ limit: 3 })
			expect(page1.jobs.map((j) => j.id)).toEqual([jobs[6]!.id, jobs[5]!.id, jobs[4]!.id])
			const page2 = await s.listJobs({ limit: 3, cursor: page1.nextCursor })
			expect(page2.jobs.map((j) => j.id)).toEqual([jobs[3]!.id, jobs[2]!.id, jobs[1]!.id])
			const page3 = await s.listJobs({ limit: 3, cursor: page2.nextCursor })
			expect(page3.jobs.map((j) => j.id)).toEqual([jobs[0]!.id])
			expect(page3.nextCursor).toBeNull()
			const odd = await s.listJobs({ name: 'odd', status: 'pending', limit: 10 })
			expect(odd.jobs).toHaveLength(2)
			expect(await s.getJob({ id: 'missing' })).toBeNull()
		})

		it('prunes finished jobs older than a time, in bounded batches', async () => {
			const jobs = Array.from({ length: 5 }, () => newJob())
			await s.enqueue({ jobs, now: T0 })
			const claimed = await s.claim(claimParams())
			for (const [i, j] of claimed.entries()) {
				await s.settle({
					outcomes: [{ kind: 'completed', id: j.id, token: j.lease.token, output: json(i) }],
					now: T0 + i * 10,
				})
			}
			expect(await s.prune({ statuses: ['completed'], before: T0 + 25, limit: 2 })).toBe(2)
			expect(await s.prune({ statuses: ['completed'], before: T0 + 25, limit: 2 })).toBe(1)
			expect(await s.prune({ statuses: ['dead'], before: T0 + 1000, limit: 10 })).toBe(0)
			expect(await s.prune({ statuses: ['completed'], before: T0 + 1000, limit: 10, name: 'other' })).toBe(0)
			expect((await s.getStats({})).total.completed).toBe(2)
		})
	})

	if (factory.durable) {
		describe('durability', () => {
			it('keeps every state across a reopen', async () => {
				const [a, b, c] = [newJob(), newJob({ maxAttempts: 1 }), newJob({ runAt: T0 + 60_000 })]
				await s.enqueue({ jobs: [a, b], now: T0 })
				const claimed = await s.claim(claimParams())
				const tb = claimed.find((j) => j.id === b.id)!
				await s.settle({
					outcomes: [{ kind: 'dead', id: b.id, token: tb.lease.token, error: err(1) }],
					now: T0,
				})
				await s.enqueue({ jobs: [c], now: T0 })
				await s.close()
				s = await t.reopen()
				expect((await s.getJob({ id: a.id }))!.status).toBe('active')
				expect((await s.getJob({ id: b.id }))!.errors).toEqual([err(1)])
				expect((await s.getJob({ id: c.id }))!.runAt).toBe(T0 + 60_000)
				const r = await s.reap({ now: T0 + 30_000, limit: 10 })
				expect(r.requeued).toEqual([a.id])
			})
		})
	}
}
