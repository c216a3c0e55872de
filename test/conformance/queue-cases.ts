/**
 * Queue cases: the public API and the worker runtime over each storage, on the controllable
 * clock, so retries, backoff and leases are checked without sleeping.
 */
import { afterEach, beforeEach, expect, it } from 'vitest'
import { z } from 'zod'
import {
	CancelledError,
	createJob,
	createQueue,
	FatalError,
	type JobContext,
	JobFailedError,
	type Queue,
	SerializationError,
	StepInterruptedError,
	silentLogger,
	TimeoutError,
	UnknownJobError,
	ValidationError,
} from '../../src/index.js'
import type { Storage } from '../../src/storage/contract.js'
import { createTestClock, type TestClock } from '../../src/testing/index.js'
import { crashable, type StorageFactory, type TestStorage } from './harness.js'

/** A promise with its resolve, for waiting on signals instead of sleeping. */
function signal<T = void>() {
	let resolve!: (v: T) => void
	const promise = new Promise<T>((r) => {
		resolve = r
	})
	return { promise, resolve }
}

export function queueCases(factory: StorageFactory): void {
	let t: TestStorage
	let clock: TestClock
	const queues: Queue<unknown>[] = []
	const open = <J>(jobs: J, extra: { storage?: Storage; concurrency?: number; lease?: string } = {}) => {
		const q = createQueue({
			jobs,
			storage: extra.storage ?? t.storage,
			clock,
			logger: silentLogger,
			concurrency: extra.concurrency ?? 5,
			worker: { pollInterval: '1s', lease: (extra.lease ?? '30s') as '30s' },
		})
		queues.push(q as Queue<unknown>)
		return q
	}

	beforeEach(async () => {
		t = await factory.create()
		clock = createTestClock()
	})
	afterEach(async () => {
		for (const q of queues.splice(0)) await q.close({ timeout: 100 })
		await t.storage.close()
		await t.destroy()
	})

	it('runs a job and resolves run() with its output', async () => {
		const add = createJob(
			{ name: 'add', input: z.object({ a: z.number(), b: z.number() }) },
			async ({ a, b }) => ({
				sum: a + b,
			}),
		)
		const q = open({ add })
		expect(await q.jobs.add.run({ a: 2, b: 3 })).toEqual({ sum: 5 })
	})

	it('retries with backoff on the clock, then dead-letters, then replays', async () => {
		let calls = 0
		const flaky = createJob(
			{ name: 'flaky', retry: 2, backoff: { initial: '10s', factor: 3, jitter: 0 } },
			async (_input: null, ctx: JobContext) => {
				calls++
				throw new Error(`fail ${ctx.attempt}`)
			},
		)
		const q = open({ flaky })
		const failures: (Date | null)[] = []
		q.on('failed', (e) => failures.push(e.retryAt))
		const start = clock.now()
		const handle = await q.jobs.flaky.start(null)
		await q.drain()
		expect(calls).toBe(1)
		expect(failures).toEqual([new Date(start + 10_000)])
		await clock.advance(9_999)
		await q.drain()
		expect(calls).toBe(1)
		await clock.advance(1)
		await q.drain()
		expect(calls).toBe(2)
		expect(failures[1]).toEqual(new Date(start + 10_000 + 30_000))
		await clock.advance(30_000)
		await q.drain()
		expect(calls).toBe(3)
		expect(failures[2]).toBeNull()
		await expect(handle.result()).rejects.toBeInstanceOf(JobFailedError)
		const job = await q.getJob(handle.id)
		expect(job!.status).toBe('dead')
		expect(job!.errors.map((e) => e.message)).toEqual(['fail 1', 'fail 2', 'fail 3'])
		expect((await q.dead.list()).jobs.map((j) => j.id)).toEqual([handle.id])
		expect(await q.dead.replay(handle.id)).toBe(true)
		await q.drain()
		expect(calls).toBe(4)
		expect(await q.dead.replayAll('flaky')).toBe(0)
	})

	it("a backoff given at enqueue overrides the job's", async () => {
		const failing = createJob({ name: 'failing', retry: 3, backoff: '1h' }, async () => {
			throw new Error('no')
		})
		const q = open({ failing })
		const retryAts: (Date | null)[] = []
		q.on('failed', (e) => retryAts.push(e.retryAt))
		await q.jobs.failing.start(undefined, { backoff: ['5s', '7s'] })
		await q.drain()
		const t0 = clock.now()
		expect(retryAts).toEqual([new Date(t0 + 5000)])
		await clock.advance(5000)
		await q.drain()
		expect(retryAts[1]).toEqual(new Date(t0 + 5000 + 7000))
		await expect(q.enqueue('failing', undefined, { backoff: { initial: '1s', jitter: 7 } })).rejects.toThrow(
			/jitter/,
		)
	})

	it('FatalError and ctx.failFatal skip retries', async () => {
		const a = createJob({ name: 'a', retry: 5 }, async () => {
			throw new FatalError('bad request')
		})
		const b = createJob({ name: 'b', retry: 5 }, async (_: null, ctx: JobContext) => {
			await ctx.failFatal('gone')
		})
		const q = open({ a, b })
		await expect(q.jobs.a.run()).rejects.toThrow(/bad request/)
		await expect(q.jobs.b.run(null)).rejects.toThrow(/gone/)
		expect((await q.getStats()).total.dead).toBe(2)
	})

	it('times out a hanging handler, aborting its signal, and retries', async () => {
		const reasons: unknown[] = []
		let entered = signal()
		const hang = createJob(
			{ name: 'hang', timeout: '5s', retry: 1, backoff: 0 },
			(_: null, ctx: JobContext) => {
				ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason))
				entered.resolve()
				return new Promise(() => {}) // never settles, ignores its signal
			},
		)
		const q = open({ hang })
		const h = await q.jobs.hang.start(null)
		await entered.promise
		entered = signal()
		await clock.advance(5000)
		expect(reasons[0]).toBeInstanceOf(TimeoutError)
		await entered.promise // the retry started
		await clock.advance(5000)
		await expect(h.result()).rejects.toBeInstanceOf(JobFailedError)
		const job = await q.getJob(h.id)
		expect(job!.errors.map((e) => e.name)).toEqual(['TimeoutError', 'TimeoutError'])
	})

	it('heartbeats keep a long job with a short lease of its own alive', async () => {
		const entered = signal()
		const release = signal()
		const long = createJob({ name: 'long', lease: '3s' }, async () => {
			entered.resolve()
			await release.promise
			return 'done'
		})
		const q = open({ long }) // the queue's own lease is 30s
		const leaseLost: string[] = []
		q.on('leaseLost', (e) => leaseLost.push(e.id))
		const h = await q.jobs.long.start()
		await entered.promise
		for (let i = 0; i < 20; i++) await clock.advance(500) // 10 s of work, in steps
		await q.maintain()
		expect((await q.getJob(h.id))!.status).toBe('active')
		release.resolve()
		expect(await h.result()).toBe('done')
		expect(leaseLost).toEqual([])
	})

	it('records non-Error throws readably', async () => {
		const values: unknown[] = ['a string', null, { code: 42 }]
		const thrower = createJob({ name: 'thrower', retry: 0 }, async (i: number) => {
			throw values[i]
		})
		const q = open({ thrower })
		for (let i = 0; i < values.length; i++)
			await expect(q.jobs.thrower.run(i)).rejects.toBeInstanceOf(JobFailedError)
		const dead = (await q.dead.list()).jobs
		const messages = dead.map((j) => j.errors[0]!.message).sort()
		expect(messages).toEqual([
			'The handler threw a non-Error value: "a string"',
			'The handler threw a non-Error value: null',
			'The handler threw a non-Error value: {"code":42}',
		])
	})

	it('refuses invalid input with the bad field named, storing nothing', async () => {
		const email = createJob(
			{ name: 'email', input: z.object({ to: z.email(), n: z.number() }) },
			async () => {},
		)
		const q = open({ email })
		const err = await q.jobs.email.start({ to: 'nope', n: 1 }).catch((e: unknown) => e)
		expect(err).toBeInstanceOf(ValidationError)
		expect((err as ValidationError).issues[0]!.path).toBe('to')
		await expect(q.enqueue('email', { to: 'a@b.co', n: 'x' as unknown as number })).rejects.toThrow(/n: /)
		await expect(q.enqueue('nope' as 'email', { to: 'a@b.co', n: 1 })).rejects.toBeInstanceOf(UnknownJobError)
		const loose = createJob({ name: 'loose' }, async (_input: unknown) => {})
		const q2 = open({ loose })
		const cyclic: Record<string, unknown> = {}
		cyclic.self = cyclic
		for (const bad of [() => 1, 10n, cyclic, { f: () => 1 }, undefined]) {
			await expect(q2.enqueue('loose', bad)).rejects.toBeInstanceOf(SerializationError)
		}
		expect((await q.getStats()).total.pending).toBe(0)
		expect((await q.listJobs()).jobs).toEqual([])
	})

	it('ctx.run memoizes a step across attempts', async () => {
		let fetches = 0
		let attempts = 0
		const job = createJob({ name: 'steps', retry: 1, backoff: 0 }, async (_: null, ctx: JobContext) => {
			attempts++
			const v = await ctx.run('fetch', () => {
				fetches++
				return { at: fetches }
			})
			const [x, y] = await Promise.all([ctx.run('p', () => 'x'), ctx.run('p', () => 'y')])
			if (attempts === 1) throw new Error('after the step')
			return { v, x, y }
		})
		const q = open({ steps: job })
		const h = await q.jobs.steps.start(null)
		await q.drain()
		await q.drain()
		expect(await h.result()).toEqual({ v: { at: 1 }, x: 'x', y: 'y' })
		expect(fetches).toBe(1)
		expect((await q.getSteps(h.id)).map((s) => s.stepId).sort()).toEqual(['run:fetch', 'run:p', 'run:p#2'])
	})

	it('runOnce never reruns a side effect whose outcome is unknown after a crash', async () => {
		let sent = 0
		const started = signal()
		const mailer = createJob({ name: 'mailer', retry: 2, backoff: 0 }, async (_: null, ctx: JobContext) => {
			try {
				await ctx.runOnce('smtp', async () => {
					sent++
					started.resolve()
					await new Promise(() => {}) // the process "dies" here
				})
			} catch (err) {
				if (err instanceof StepInterruptedError) return { recovered: err.key }
				throw err
			}
		})
		// A first process runs the job until the side effect is under way, then dies.
		const doomed = crashable(await t.reopen())
		const crashed = open({ mailer }, { storage: doomed.storage, lease: '1s' })
		const h = await crashed.jobs.mailer.start(null)
		await started.promise
		doomed.crash()
		// A second process over the same storage reaps the expired lease and retries.
		const q = open({ mailer }, { storage: await t.reopen(), lease: '1s' })
		await q.ready
		await clock.advance(1000)
		await q.maintain()
		await q.drain()
		expect(await q.result(h.id)).toEqual({ recovered: 'smtp' })
		expect(sent).toBe(1)
	})

	it('dedupe keys and idempotency keys through the API', async () => {
		const sync = createJob({ name: 'sync' }, async (_input: { user: string }) => {})
		const q = createQueue({ jobs: { sync }, storage: t.storage, clock, logger: silentLogger, worker: false })
		queues.push(q as Queue<unknown>)
		const id = await q.enqueue('sync', { user: 'u1' }, { dedupeKey: 'u1' })
		expect(id).toEqual(expect.any(String))
		expect(await q.enqueue('sync', { user: 'u1' }, { dedupeKey: 'u1' })).toBeNull()
		const h = await q.jobs.sync.start({ user: 'u1' }, { dedupeKey: 'u1' })
		expect(h).toMatchObject({ status: 'deduped', id })
		const k1 = await q.enqueue('sync', { user: 'u2' }, { idempotencyKey: 'welcome:u2' })
		expect(await q.enqueue('sync', { user: 'u2' }, { idempotencyKey: 'welcome:u2' })).toBe(k1)
		const custom = await q.enqueue('sync', { user: 'u3' }, { id: 'job-1' })
		expect(custom).toBe('job-1')
		expect(await q.enqueue('sync', { user: 'u3' }, { id: 'job-1' })).toBe('job-1')
		expect((await q.getStats()).total.pending).toBe(3)
	})

	it('claimOrEnqueue gives single-flight with one follow-up', async () => {
		let ran = 0
		const reschedule = createJob({ name: 'reschedule' }, async () => {
			ran++
		})
		const q = open({ reschedule })
		await q.ready
		const opts = { dedupeKey: 'reschedule:u1', dedupeScope: 'pending' as const }
		const handle = await q.claimOrEnqueue('reschedule', undefined, opts)
		expect(handle).not.toBeNull()
		expect(await q.claimOrEnqueue('reschedule', undefined, opts)).toBeNull() // queued behind
		expect(await q.claimOrEnqueue('reschedule', undefined, opts)).toBeNull() // coalesced
		await q.drain()
		expect(ran).toBe(0) // the follow-up waits while the first runs
		await handle!.complete()
		await q.drain()
		expect(ran).toBe(1)
		expect((await q.getStats()).total.completed).toBe(2)
	})

	it('cancels a pending job and an active one (aborting its signal)', async () => {
		const entered = signal()
		let reason: unknown = null
		const slow = createJob({ name: 'slow' }, (_: unknown, ctx: JobContext) => {
			entered.resolve()
			return new Promise((_resolve, reject) => {
				ctx.signal.addEventListener('abort', () => {
					reason = ctx.signal.reason
					reject(ctx.signal.reason)
				})
			})
		})
		const cancelled: string[] = []
		const q = open({ slow }, { concurrency: 1 })
		q.on('cancelled', (e) => cancelled.push(e.id))
		const a = await q.jobs.slow.start(null)
		const b = await q.jobs.slow.start(null)
		await entered.promise
		expect(await q.cancel(b.id)).toEqual({ status: 'cancelled', previous: 'pending' })
		expect(await q.cancel(a.id)).toEqual({ status: 'cancelled', previous: 'active' })
		await expect(a.result()).rejects.toBeInstanceOf(CancelledError)
		await expect(b.result()).rejects.toBeInstanceOf(CancelledError)
		expect(reason).toBeInstanceOf(CancelledError)
		expect(await q.cancel(a.id)).toEqual({ status: 'already-finished', current: 'cancelled' })
		expect(cancelled.sort()).toEqual([a.id, b.id].sort())
		await q.drain()
		expect((await q.getJob(a.id))!.status).toBe('cancelled')
	})

	it('close gives running jobs back without counting the attempt', async () => {
		const entered = signal()
		const stuck = createJob({ name: 'stuck' }, async () => {
			entered.resolve()
			await new Promise(() => {})
		})
		const q = open({ stuck })
		const h = await q.jobs.stuck.start()
		await entered.promise
		await q.close({ timeout: 20 })
		const other = await t.reopen()
		const row = await other.getJob({ id: h.id })
		expect(row).toMatchObject({ status: 'pending', attempt: 0, lease: null })
		if (other !== t.storage) await other.close()
	})

	it('calls lifecycle hooks and job events in order', async () => {
		const seen: string[] = []
		const job = createJob(
			{
				name: 'hooked',
				retry: 1,
				backoff: 0,
				onTrigger: () => {
					seen.push('trigger')
				},
				onStart: () => {
					seen.push('start')
				},
				onError: () => {
					seen.push('error')
				},
				onSuccess: (_i, out) => {
					seen.push(`success:${out}`)
				},
				onSettled: () => {
					seen.push('settled')
				},
			},
			async (_: null, ctx: JobContext) => {
				if (ctx.attempt === 1) throw new Error('first')
				return 'ok'
			},
		)
		const q = open({ hooked: job })
		const events: string[] = []
		q.jobs.hooked.on('success', (out, meta) => events.push(`success:${out}:${meta.attempt}`))
		q.jobs.hooked.on('error', (e) => events.push(`error:${e.message}`))
		expect(await q.jobs.hooked.run(null)).toBe('ok')
		expect(seen).toEqual(['trigger', 'start', 'error', 'start', 'success:ok', 'settled'])
		expect(events).toEqual(['error:first', 'success:ok:2'])
	})
}
