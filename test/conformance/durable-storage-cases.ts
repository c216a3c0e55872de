/**
 * Contract cases of durable execution: step indexes, wake-ups at claim time, suspensions that
 * lose no wake-up, and waiters with published events. Each calls the storage directly.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Storage } from '../../src/storage/contract.js'
import { claimParams, json, newJob, type StorageFactory, T0, type TestStorage } from './harness.js'

export function durableStorageCases(factory: StorageFactory): void {
	let t: TestStorage
	let s: Storage

	beforeEach(async () => {
		t = await factory.create()
		s = t.storage
	})
	afterEach(async () => {
		await s.close()
		await t.destroy()
	})

	const suspend = async (
		id: string,
		token: string,
		extra: { wakeAt?: number | null; children?: string[]; waiters?: string[] },
	) =>
		s.settle({
			outcomes: [
				{
					kind: 'suspended',
					id,
					token,
					wakeAt: extra.wakeAt ?? null,
					children: extra.children,
					waiters: extra.waiters,
				},
			],
			now: T0,
		})

	describe('durable steps', () => {
		it('keeps the call index of a step from its first write', async () => {
			await s.enqueue({ jobs: [newJob()], now: T0 })
			const [j] = await s.claim(claimParams())
			const save = (stepId: string, index: number | undefined, state: 'started' | 'completed') =>
				s.saveStep({
					jobId: j!.id,
					token: j!.lease.token,
					stepId,
					name: stepId,
					state,
					index,
					output: null,
					error: null,
					now: T0,
				})
			await save('sleep', 3, 'started')
			await save('sleep', 9, 'completed')
			await save('run:x', undefined, 'completed')
			const steps = await s.getSteps({ jobId: j!.id })
			expect(steps.map((x) => [x.stepId, x.index, x.state])).toEqual([
				['sleep', 3, 'completed'],
				['run:x', null, 'completed'],
			])
		})

		it('a claim wakes waiting jobs of its names whose time has come', async () => {
			const [a, b, other] = [newJob(), newJob(), newJob({ name: 'other' })]
			await s.enqueue({ jobs: [a, b, other], now: T0 })
			const claimed = await s.claim(claimParams({ names: ['work', 'other'] }))
			await s.settle({
				outcomes: claimed.map((j) => ({
					kind: 'suspended' as const,
					id: j.id,
					token: j.lease.token,
					wakeAt: j.id === b.id ? T0 + 5000 : T0 + 1000,
				})),
				now: T0,
			})
			expect(await s.claim(claimParams({ now: T0 + 999 }))).toEqual([])
			const due = await s.claim(claimParams({ now: T0 + 1000 }))
			expect(due.map((j) => j.id)).toEqual([a.id])
			expect(due[0]!.attempt).toBe(1)
			// Not a name this claimer takes: left waiting for the reaper or its own workers.
			expect((await s.getJob({ id: other.id }))!.status).toBe('waiting')
			expect((await s.getJob({ id: b.id }))!.status).toBe('waiting')
		})

		it('a suspend whose child already finished (or is gone) goes to pending at once', async () => {
			const parent = newJob({ name: 'parent' })
			await s.enqueue({ jobs: [parent], now: T0 })
			const [p] = await s.claim(claimParams({ names: ['parent'] }))
			const [done, running] = [newJob({ parentId: parent.id }), newJob({ parentId: parent.id })]
			await s.enqueue({ jobs: [done, running], now: T0 })
			const [c] = await s.claim(claimParams({ limit: 1 }))
			await s.settle({
				outcomes: [{ kind: 'completed', id: c!.id, token: c!.lease.token, output: json(1) }],
				now: T0,
			})
			// The child finished while the parent still ran: the parent must not wait forever.
			expect((await suspend(p!.id, p!.lease.token, { children: [done.id, running.id] }))[0]!.ok).toBe(true)
			expect((await s.getJob({ id: parent.id }))!.status).toBe('pending')
			const [again] = await s.claim(claimParams({ names: ['parent'] }))
			await suspend(again!.id, again!.lease.token, { children: [running.id] })
			expect((await s.getJob({ id: parent.id }))!.status).toBe('waiting')
			const [p3] = [newJob({ name: 'parent' })]
			await s.enqueue({ jobs: [p3], now: T0 })
			const [c3] = await s.claim(claimParams({ names: ['parent'] }))
			await suspend(c3!.id, c3!.lease.token, { children: ['missing-child'] })
			expect((await s.getJob({ id: p3.id }))!.status).toBe('pending')
		})
	})

	describe('waiters', () => {
		it('adds waiters under the lease, idempotently', async () => {
			await s.enqueue({ jobs: [newJob()], now: T0 })
			const [j] = await s.claim(claimParams())
			const waiter = { id: `${j!.id}.0`, jobId: j!.id, topic: 'job:order', match: json({ id: 7 }) }
			expect(await s.addWaiter({ waiter, token: 'stale', now: T0 })).toBe(false)
			expect(await s.getWaiter({ id: waiter.id })).toBeNull()
			expect(await s.addWaiter({ waiter, token: j!.lease.token, now: T0 })).toBe(true)
			await s.publish({
				event: { topic: 'job:order', subject: json({ id: 7 }), payload: json('a') },
				now: T0,
			})
			expect(await s.addWaiter({ waiter: { ...waiter, match: null }, token: j!.lease.token, now: T0 })).toBe(
				true,
			)
			expect(await s.getWaiter({ id: waiter.id })).toEqual({ ...waiter, events: [json('a')], createdAt: T0 })
		})

		it('publishes to matching waiters, wakes waiting jobs, and trims', async () => {
			const [a, b, gone] = [newJob(), newJob(), newJob()]
			await s.enqueue({ jobs: [a, b, gone], now: T0 })
			const claimed = await s.claim(claimParams())
			const by = new Map(claimed.map((j) => [j.id, j]))
			const add = (id: string, match: unknown) =>
				s.addWaiter({
					waiter: {
						id: `${id}.w`,
						jobId: id,
						topic: 'job:order',
						match: match === null ? null : json(match),
					},
					token: by.get(id)!.lease.token,
					now: T0,
				})
			await add(a.id, { user: { id: 1 } })
			await add(b.id, null)
			await add(gone.id, null)
			await s.settle({
				outcomes: [
					{ kind: 'suspended', id: a.id, token: by.get(a.id)!.lease.token, wakeAt: null },
					{ kind: 'suspended', id: b.id, token: by.get(b.id)!.lease.token, wakeAt: null },
					{ kind: 'completed', id: gone.id, token: by.get(gone.id)!.lease.token, output: json(null) },
				],
				now: T0,
			})
			const publish = (subject: unknown, payload: unknown) =>
				s.publish({
					event: { topic: 'job:order', subject: json(subject), payload: json(payload) },
					now: T0 + 1,
				})
			expect(await publish({ user: { id: 2 } }, 'p1')).toEqual([b.id])
			expect(await publish({ user: { id: 1, name: 'x' }, n: 3 }, 'p2')).toEqual([a.id])
			await s.publish({ event: { topic: 'pipe:other', subject: json(1), payload: json('x') }, now: T0 })
			expect((await s.getWaiter({ id: `${a.id}.w` }))!.events).toEqual([json('p2')])
			expect((await s.getWaiter({ id: `${b.id}.w` }))!.events).toEqual([json('p1'), json('p2')])
			// A finished job's waiter receives nothing.
			expect((await s.getWaiter({ id: `${gone.id}.w` }))?.events ?? []).toEqual([])
			expect((await s.getJob({ id: a.id }))!.status).toBe('pending')
			await s.trimWaiter({ id: `${b.id}.w`, drop: 1 })
			expect((await s.getWaiter({ id: `${b.id}.w` }))!.events).toEqual([json('p2')])
			await s.trimWaiter({ id: `${b.id}.w`, drop: 'all' })
			expect(await s.getWaiter({ id: `${b.id}.w` })).toBeNull()
		})

		it('a completion publishes its event in the same settle, and a suspend sees events that came', async () => {
			const [watcher, order] = [
				newJob({ name: 'watcher' }),
				newJob({ name: 'order', input: json({ id: 7 }) }),
			]
			await s.enqueue({ jobs: [watcher, order], now: T0 })
			const [w] = await s.claim(claimParams({ names: ['watcher'] }))
			const waiterId = `${w!.id}.0`
			await s.addWaiter({
				waiter: { id: waiterId, jobId: w!.id, topic: 'job:order', match: json({ id: 7 }) },
				token: w!.lease.token,
				now: T0,
			})
			const [o] = await s.claim(claimParams({ names: ['order'] }))
			const payload = json({ input: { id: 7 }, output: 'shipped' })
			await s.settle({
				outcomes: [
					{
						kind: 'completed',
						id: o!.id,
						token: o!.lease.token,
						output: json('shipped'),
						event: { topic: 'job:order', subject: o!.input, payload },
					},
				],
				now: T0,
			})
			expect((await s.getWaiter({ id: waiterId }))!.events).toEqual([payload])
			// The event came while the watcher still ran: its suspend goes straight to pending.
			await suspend(w!.id, w!.lease.token, { waiters: [waiterId] })
			expect((await s.getJob({ id: w!.id }))!.status).toBe('pending')
		})
	})
}
