/**
 * Durable execution through the public API on each storage, on the controllable clock: steps and
 * their options, durable sleep, child jobs, waitFor, cancellation cascades, output validation.
 */
import { afterEach, beforeEach, expect, it } from 'vitest'
import { z } from 'zod'
import {
	CancelledError,
	createJob,
	createQueue,
	type JobContext,
	JobFailedError,
	NonDeterminismError,
	type Queue,
	run,
	silentLogger,
	sleep,
	TimeoutError,
} from '../../src/index.js'
import type { Storage } from '../../src/storage/contract.js'
import { createTestClock, type TestClock } from '../../src/testing/index.js'
import type { StorageFactory, TestStorage } from './harness.js'

export function durableCases(factory: StorageFactory): void {
	let t: TestStorage
	let clock: TestClock
	const queues: Queue<unknown>[] = []
	const open = <J>(jobs: J, extra: { storage?: Storage; concurrency?: number; worker?: boolean } = {}) => {
		const q = createQueue({
			jobs,
			storage: extra.storage ?? t.storage,
			clock,
			logger: silentLogger,
			concurrency: extra.concurrency ?? 5,
			worker: extra.worker === false ? false : { pollInterval: '1s' },
		})
		queues.push(q as Queue<unknown>)
		return q
	}
	const status = async (q: Queue<unknown>, id: string) => (await q.getJob(id))?.status

	beforeEach(async () => {
		t = await factory.create()
		clock = createTestClock()
	})
	afterEach(async () => {
		for (const q of queues.splice(0)) await q.close({ timeout: 100 })
		await t.storage.close()
		await t.destroy()
	})

	it('sleep leaves the slot and the lease, and resumes at the wake time with steps memoized', async () => {
		const counts = { before: 0, after: 0, other: 0 }
		const napper = createJob({ name: 'napper' }, async (_: null, ctx: JobContext) => {
			await ctx.run('before', () => ++counts.before)
			await sleep('1h')
			await run('after', () => ++counts.after)
			return 'rested'
		})
		const other = createJob({ name: 'other' }, async () => ++counts.other)
		const q = open({ napper, other }, { concurrency: 1 })
		const h = await q.jobs.napper.start(null)
		await q.drain()
		const row = await q.getJob(h.id)
		expect(row).toMatchObject({ status: 'waiting', leaseOwner: null, attempt: 0 })
		expect(row!.runAt.getTime()).toBe(clock.now() + 3_600_000)
		// Its one slot is free: another job runs while it sleeps.
		expect(await q.jobs.other.run()).toBe(1)
		await clock.advance(3_600_000)
		expect(await h.result()).toBe('rested')
		expect(counts).toEqual({ before: 1, after: 1, other: 1 })
		expect((await q.getSteps(h.id)).map((s) => [s.stepId, s.index, s.state])).toEqual([
			['run:before', 0, 'completed'],
			['sleep', 1, 'completed'],
			['run:after', 2, 'completed'],
		])
	})

	it('a sleeping job resumes in a new process after a restart', async () => {
		if (!factory.durable) return
		let steps = 0
		const napper = createJob({ name: 'napper' }, async (_: null, ctx: JobContext) => {
			await ctx.run('work', () => ++steps)
			await ctx.sleep('24h')
			return 'awake'
		})
		const first = open({ napper }, { storage: await t.reopen() })
		const h = await first.jobs.napper.start(null)
		await first.drain()
		await first.close()
		await clock.advance(86_400_000)
		const second = open({ napper }, { storage: await t.reopen() })
		await second.drain()
		expect(await second.result(h.id)).toBe('awake')
		expect(steps).toBe(1)
	})

	it('child jobs start once, run in parallel, and resume the parent with their outputs', async () => {
		const runs = { parent: 0, child: 0 }
		const double = createJob({ name: 'double' }, async (n: number) => {
			runs.child++
			return n * 2
		})
		const parent = createJob({ name: 'parent' }, async (_: null, ctx: JobContext) => {
			runs.parent++
			const [a, b] = await Promise.all([double.run(1), double.run(2)])
			const started = await double.start(5)
			const c = await ctx.run('sum', () => a + b)
			return { a, b, c, started }
		})
		const q = open({ double, parent })
		const h = await q.jobs.parent.start(null)
		await q.drain()
		expect(await h.result()).toEqual({ a: 2, b: 4, c: 6, started: `${h.id}.2` })
		expect(runs.child).toBe(3)
		expect(runs.parent).toBeGreaterThanOrEqual(2)
		const children = (await q.listJobs({ parentId: h.id })).jobs
		expect(children.map((j) => j.id).sort()).toEqual([`${h.id}.0`, `${h.id}.1`, `${h.id}.2`])
		expect(children.every((j) => j.status === 'completed')).toBe(true)
	})

	it("a child's final error is thrown in the parent; a cancelled child throws CancelledError", async () => {
		const fail = createJob({ name: 'fail', retry: 0 }, async () => {
			throw new Error('no luck')
		})
		const napper = createJob({ name: 'napper' }, async (_: number, ctx: JobContext) => ctx.sleep('1h'))
		const parent = createJob({ name: 'parent', retry: 0 }, async () => {
			const out: string[] = []
			try {
				await fail.run()
			} catch (err) {
				out.push(err instanceof JobFailedError ? `failed: ${(err.cause as Error).message}` : 'other')
			}
			try {
				await napper.run(0)
			} catch (err) {
				out.push(err instanceof CancelledError ? 'cancelled' : 'other')
			}
			return out
		})
		const q = open({ fail, napper, parent })
		const h = await q.jobs.parent.start()
		// Storages that write in the background may need more than one pass to get there.
		for (let i = 0; i < 100 && (await status(q, `${h.id}.1`)) !== 'waiting'; i++) {
			await q.drain()
			await new Promise((r) => setTimeout(r, 10))
		}
		expect(await status(q, `${h.id}.1`)).toBe('waiting')
		await q.cancel(`${h.id}.1`)
		await q.drain()
		expect(await h.result()).toEqual(['failed: no luck', 'cancelled'])
	})

	it('a replay that meets a different step fails with NonDeterminismError naming both', async () => {
		let first = true
		const job = createJob({ name: 'nd', retry: 1, backoff: 0 }, async (_: null, ctx: JobContext) => {
			await ctx.run(first ? 'charge' : 'refund', () => 1)
			if (first) {
				first = false
				throw new Error('try again')
			}
			return 'unreachable'
		})
		const q = open({ nd: job })
		const h = await q.jobs.nd.start(null)
		await q.drain()
		await q.drain()
		const err = await h.result().catch((e: unknown) => e)
		expect(err).toBeInstanceOf(JobFailedError)
		expect(((err as JobFailedError).cause as Error).name).toBe(NonDeterminismError.name)
		expect((err as Error).message).toMatch(/run:refund.*run:charge/)
		expect((await q.getJob(h.id))!.status).toBe('dead')
	})

	it("a step's own retries, backoff and timeout apply before the job's", async () => {
		let tries = 0
		const job = createJob({ name: 'steps', retry: 0 }, async (_: null, ctx: JobContext) => {
			const v = await ctx.run({ name: 'flaky', retry: 2, backoff: '10s' }, () => {
				if (++tries < 3) throw new Error(`try ${tries}`)
				return tries
			})
			try {
				await ctx.run({ name: 'slow', timeout: '5s' }, () => new Promise(() => {}))
			} catch (err) {
				return { v, timedOut: err instanceof TimeoutError }
			}
		})
		const q = open({ steps: job })
		const h = await q.jobs.steps.start(null)
		const result = h.result()
		let settled = false
		void result.finally(() => {
			settled = true
		})
		// Moves the clock along while the storage's round trips happen in real time.
		for (let i = 0; i < 500 && !settled; i++) {
			await clock.advance(1000)
			await new Promise((r) => setTimeout(r, 2))
		}
		expect(await result).toEqual({ v: 3, timedOut: true })
		expect(tries).toBe(3)
		expect((await q.getJob(h.id))!.attempt).toBe(1)
	})

	it('a step with concurrency 1 runs one at a time', async () => {
		let running = 0
		let most = 0
		const job = createJob({ name: 'store' }, async (n: number, ctx: JobContext) =>
			ctx.run({ name: 'store-metadata', concurrency: 1 }, async () => {
				running++
				most = Math.max(most, running)
				await new Promise((r) => setImmediate(r))
				running--
				return n
			}),
		)
		const q = open({ store: job })
		const out = await Promise.all([1, 2, 3, 4].map((n) => q.jobs.store.run(n)))
		expect(out).toEqual([1, 2, 3, 4])
		expect(most).toBe(1)
	})

	it('job.waitFor waits, suspended, for a matching completion, by pattern or predicate, with a timeout', async () => {
		const order = createJob({ name: 'order' }, async (o: { id: number; kind: string }) => ({ shipped: o.id }))
		const watcher = createJob({ name: 'watcher' }, async () => {
			const byPattern = await order.waitFor({ id: 7 })
			const byPredicate = await order.waitFor((o) => o.kind === 'gift')
			let timedOut = false
			try {
				await order.waitFor({ id: 99 }, { timeout: '10m' })
			} catch (err) {
				timedOut = err instanceof TimeoutError
			}
			return { byPattern, byPredicate, timedOut }
		})
		const q = open({ order, watcher })
		const h = await q.jobs.watcher.start()
		await q.drain()
		expect(await status(q, h.id)).toBe('waiting')
		await q.jobs.order.run({ id: 1, kind: 'gift' })
		await q.drain()
		expect(await status(q, h.id)).toBe('waiting')
		await q.jobs.order.run({ id: 7, kind: 'book' })
		await q.drain()
		await q.jobs.order.run({ id: 8, kind: 'book' })
		await q.jobs.order.run({ id: 9, kind: 'gift' })
		await q.drain()
		expect(await status(q, h.id)).toBe('waiting')
		await clock.advance(600_000)
		await q.drain()
		expect(await h.result()).toEqual({
			byPattern: { shipped: 7 },
			byPredicate: { shipped: 9 },
			timedOut: true,
		})
	})

	it('cancel cascades to children, fires onCancel, and says when a job already finished', async () => {
		const cancelled: string[] = []
		const napper = createJob(
			{ name: 'napper', onCancel: () => void cancelled.push('napper') },
			async (_: number, ctx: JobContext) => ctx.sleep('1d'),
		)
		const parent = createJob({ name: 'parent', onCancel: () => void cancelled.push('parent') }, async () => {
			await napper.run(0)
		})
		const q = open({ napper, parent })
		const h = await q.jobs.parent.start()
		await q.drain()
		expect(await status(q, `${h.id}.0`)).toBe('waiting')
		expect(await q.cancel(h.id)).toEqual({ status: 'cancelled', previous: 'waiting' })
		expect(await status(q, h.id)).toBe('cancelled')
		expect(await status(q, `${h.id}.0`)).toBe('cancelled')
		expect(cancelled.sort()).toEqual(['napper', 'parent'])
		await expect(h.result()).rejects.toBeInstanceOf(CancelledError)
		expect(await q.cancel(h.id)).toEqual({ status: 'already-finished', current: 'cancelled' })
		// job.cancel(input): the unfinished runs whose input matches.
		const a = await q.jobs.napper.start(1, { delay: '1h' })
		await q.jobs.napper.start(2, { delay: '1h' })
		const r = await q.jobs.napper.cancel(1)
		expect(r).toEqual([{ id: a.id, status: 'cancelled', previous: 'pending' }])
		expect(await q.jobs.napper.cancel(1)).toEqual([])
	})

	it('validates output with the output schema', async () => {
		const job = createJob(
			{ name: 'typed', output: z.object({ n: z.number() }) },
			async (bad: boolean) => (bad ? { n: 'x' } : { n: 1 }) as { n: number },
		)
		const q = open({ typed: job })
		expect(await q.jobs.typed.run(false)).toEqual({ n: 1 })
		const err = await q.jobs.typed.run(true).catch((e: unknown) => e)
		expect((err as Error).message).toMatch(/output.*n/i)
	})

	it('run() in a producer-only queue resolves with a result computed by another queue', async () => {
		const add = createJob({ name: 'add' }, async ({ a, b }: { a: number; b: number }) => a + b)
		const producer = open({ add }, { worker: false })
		const worker = open({ add })
		const result = producer.jobs.add.run({ a: 2, b: 40 })
		let settled = false
		result.then(
			() => {
				settled = true
			},
			() => {
				settled = true
			},
		)
		await producer.ready
		// The producer polls on the test clock: keep time moving until it has seen the outcome (how
		// many polls that takes depends on when its enqueue commits relative to the worker's drain).
		for (let i = 0; i < 30 && !settled; i++) {
			await worker.drain()
			await clock.advance(1000)
		}
		expect(await result).toBe(42)
	})
}
