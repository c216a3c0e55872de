/**
 * Flow control through the public API, on the controllable clock: per-key concurrency, the
 * per-queue ceiling, pause/resume, throttle, debounce, retry as a function, pipes and triggers,
 * and cron (exactly once per tick across queues, timezones, catch-up, a custom scheduler).
 */
import { afterEach, beforeEach, expect, it } from 'vitest'
import { z } from 'zod'
import {
	ConfigError,
	type CronScheduler,
	createJob,
	createPipe,
	createQueue,
	type Queue,
	silentLogger,
	ThrottledError,
	ValidationError,
} from '../../src/index.js'
import type { Storage } from '../../src/storage/contract.js'
import { createTestClock, type TestClock } from '../../src/testing/index.js'
import type { StorageFactory, TestStorage } from './harness.js'

const MINUTE = 60_000

/** Lets the event loop turn a few times (no wall-clock wait). */
async function turns(n = 5) {
	for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r))
}

export function flowQueueCases(factory: StorageFactory): void {
	let t: TestStorage
	let clock: TestClock
	const queues: Queue<unknown, unknown>[] = []
	type Extra = {
		storage?: Storage
		concurrency?: number
		worker?: false
		cronScheduler?: CronScheduler
		/** Poll and maintenance interval: long for cron cases, which move the clock by minutes. */
		every?: '1s' | '1m'
	}
	const open = <J, P = Record<string, never>>(jobs: J, extra: Extra & { pipes?: P } = {}) => {
		const q = createQueue({
			jobs,
			pipes: extra.pipes,
			storage: extra.storage ?? t.storage,
			clock,
			logger: silentLogger,
			concurrency: extra.concurrency ?? 10,
			cronScheduler: extra.cronScheduler,
			worker: extra.worker ?? { pollInterval: extra.every ?? '1s', maintenanceInterval: extra.every ?? '1s' },
		})
		queues.push(q as Queue<unknown, unknown>)
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

	/** A handler that records how many of each key run at once, and the most seen. */
	function tracker() {
		const running = new Map<string, number>()
		const most = new Map<string, number>()
		let total = 0
		let mostTotal = 0
		return {
			most,
			get mostTotal() {
				return mostTotal
			},
			async run(k: string) {
				running.set(k, (running.get(k) ?? 0) + 1)
				total++
				most.set(k, Math.max(most.get(k) ?? 0, running.get(k)!))
				mostTotal = Math.max(mostTotal, total)
				await turns(3)
				running.set(k, running.get(k)! - 1)
				total--
			},
		}
	}

	it('concurrency as a function of the input: one run per user at a time, across queues', async () => {
		const tr = tracker()
		const sync = createJob(
			{
				name: 'sync',
				input: z.object({ user: z.string(), n: z.number() }),
				concurrency: ({ user }) => ({ id: `user:${user}`, limit: 1 }),
			},
			async ({ user }) => tr.run(user),
		)
		const other = await t.reopen()
		const q1 = open({ sync })
		const q2 = open({ sync }, { storage: other })
		const handles = await q1.jobs.sync.startMany(
			['a', 'a', 'a', 'b', 'b', 'c'].map((user, n) => ({ input: { user, n } })),
		)
		await Promise.all([q1.drain(), q2.drain()])
		for (let i = 0; i < 6 && (await q1.getStats()).total.completed < 6; i++) {
			await Promise.all([q1.drain(), q2.drain()])
		}
		expect((await q1.getStats()).total.completed).toBe(6)
		await Promise.all(handles.map((h) => h.result()))
		expect(Object.fromEntries(tr.most)).toEqual({ a: 1, b: 1, c: 1 })
	})

	it('concurrency as a number, and the per-queue ceiling', async () => {
		const tr = tracker()
		const one = createJob({ name: 'one', concurrency: 2 }, async (n: number) => tr.run(`one:${n % 1}`))
		const q = open({ one }, { concurrency: 3 })
		await q.jobs.one.startMany(Array.from({ length: 6 }, (_, n) => ({ input: n })))
		await q.drain()
		expect(tr.most.get('one:0')).toBe(2)

		const tr2 = tracker()
		const free = createJob({ name: 'free' }, async (n: number) => tr2.run(String(n)))
		const q2 = open({ free }, { concurrency: 3 })
		await q2.jobs.free.startMany(Array.from({ length: 9 }, (_, n) => ({ input: n })))
		await q2.drain()
		expect(tr2.mostTotal).toBe(3)
	})

	it('a frequency concurrency limit spreads starts over the clock', async () => {
		const starts: number[] = []
		const api = createJob({ name: 'api', concurrency: '2 per 5 seconds' }, async () => {
			starts.push(clock.now())
		})
		const q = open({ api })
		await q.jobs.api.startMany(Array.from({ length: 5 }, () => ({ input: undefined })))
		await q.drain()
		expect(starts).toHaveLength(2)
		await clock.advance(5000)
		await q.drain()
		expect(starts).toHaveLength(4)
		await clock.advance(5000)
		await q.drain()
		expect(starts.map((at) => Math.floor((at - starts[0]!) / 5000))).toEqual([0, 0, 1, 1, 2])
	})

	it('pause and resume a job name, durably and for every queue on the storage', async () => {
		const ran: number[] = []
		const work = createJob({ name: 'work' }, async (n: number) => {
			ran.push(n)
		})
		const q = open({ work })
		await q.pause('work')
		expect(await q.listPaused()).toEqual(['work'])
		await q.jobs.work.start(1)
		await q.drain()
		const q2 = open({ work }, { storage: await t.reopen() })
		await q2.drain()
		expect(ran).toEqual([])
		expect(await q2.listPaused()).toEqual(['work'])
		await q2.resume('work')
		await q.drain()
		await q2.drain()
		expect(ran).toEqual([1])
	})

	it('throttle discard rejects run() with ThrottledError; queue mode delays', async () => {
		const ran: string[] = []
		const ping = createJob({ name: 'ping', throttle: { duration: '1 per second' } }, async (s: string) => {
			ran.push(s)
			return s
		})
		const slow = createJob(
			{ name: 'slow', throttle: { id: 'slow-api', duration: '1s', mode: 'queue' } },
			async (s: string) => {
				ran.push(s)
			},
		)
		const q = open({ ping, slow })
		const first = await q.jobs.ping.start('a')
		const second = await q.jobs.ping.start('b')
		expect([first.status, second.status]).toEqual(['created', 'throttled'])
		await expect(second.result()).rejects.toBeInstanceOf(ThrottledError)
		await expect(q.jobs.ping.run('c')).rejects.toMatchObject({ code: 'SPOOL_THROTTLED' })
		expect(await q.enqueue('ping', 'd')).toBeNull()
		expect(await first.result()).toBe('a')
		await clock.advance(1000)
		expect(await q.jobs.ping.run('e')).toBe('e')

		await q.jobs.slow.startMany([{ input: 'x' }, { input: 'y' }, { input: 'z' }])
		await q.drain()
		expect(ran.filter((r) => 'xyz'.includes(r))).toEqual(['x'])
		await clock.advance(1000)
		await q.drain()
		await clock.advance(1000)
		await q.drain()
		expect(ran.filter((r) => 'xyz'.includes(r))).toEqual(['x', 'y', 'z'])
	})

	it('debounce trailing runs once with the latest input; every trigger gets its result', async () => {
		const seen: string[] = []
		const index = createJob(
			{ name: 'index', input: z.object({ doc: z.string() }), debounce: { duration: '2s', timeout: '5s' } },
			async ({ doc }) => {
				seen.push(doc)
				return doc
			},
		)
		const q = open({ index })
		const h1 = await q.jobs.index.start({ doc: 'v1' })
		await clock.advance(1000)
		const h2 = await q.jobs.index.start({ doc: 'v2' })
		await clock.advance(1500)
		const h3 = await q.jobs.index.start({ doc: 'v3' })
		expect([h1.status, h2.status, h3.status]).toEqual(['created', 'debounced', 'debounced'])
		expect(new Set([h1.id, h2.id, h3.id]).size).toBe(1)
		await clock.advance(1999)
		await q.drain()
		expect(seen).toEqual([])
		await clock.advance(1)
		await q.drain()
		expect(await Promise.all([h1.result(), h2.result(), h3.result()])).toEqual(['v3', 'v3', 'v3'])
		expect(seen).toEqual(['v3'])
	})

	it('debounce as a function of the input keys series separately', async () => {
		const seen: string[] = []
		const save = createJob(
			{
				name: 'save',
				input: z.object({ doc: z.string(), rev: z.number() }),
				debounce: ({ doc }) => ({ id: `doc:${doc}`, duration: 1000, mode: 'leading' }),
			},
			async ({ doc, rev }) => {
				seen.push(`${doc}@${rev}`)
			},
		)
		const q = open({ save })
		for (let rev = 1; rev <= 3; rev++) {
			await q.jobs.save.start({ doc: 'a', rev })
			await q.jobs.save.start({ doc: 'b', rev })
		}
		await q.drain()
		expect(seen.sort()).toEqual(['a@1', 'b@1'])
		await clock.advance(1000)
		await q.drain()
		expect(seen.sort()).toEqual(['a@1', 'a@3', 'b@1', 'b@3'])
	})

	it('retry as a function of the input', async () => {
		const attempts = new Map<number, number>()
		const flaky = createJob(
			{ name: 'flaky', retry: (n: number) => n, backoff: ['1s', '2s'] },
			async (n: number) => {
				attempts.set(n, (attempts.get(n) ?? 0) + 1)
				throw new Error('no')
			},
		)
		const q = open({ flaky })
		await q.jobs.flaky.startMany([{ input: 0 }, { input: 2 }])
		for (let i = 0; i < 4; i++) {
			await q.drain()
			await clock.advance(2000)
		}
		await q.drain()
		expect(Object.fromEntries(attempts)).toEqual({ 0: 1, 2: 3 })
	})

	it('pipes and triggers: each event and each successful run starts its listeners once', async () => {
		const orders = createPipe({ name: 'orders', input: z.object({ id: z.number(), total: z.number() }) })
		const seen: string[] = []
		const invoice = createJob(
			{
				name: 'invoice',
				input: z.object({ order: z.number() }),
				trigger: [orders.into(({ id }) => ({ order: id }))],
			},
			async ({ order }) => {
				seen.push(`invoice ${order}`)
				return { invoice: `INV-${order}` }
			},
		)
		const email = createJob(
			{
				name: 'email',
				input: z.object({ subject: z.string() }),
				trigger: [invoice.into(({ invoice: n }) => ({ subject: n }))],
			},
			async ({ subject }) => {
				seen.push(`email ${subject}`)
			},
		)
		const audit = createJob({ name: 'audit', trigger: [orders.into()] }, async (o: { id: number }) => {
			seen.push(`audit ${o.id}`)
		})
		const jobs = { invoice, email, audit }
		// The sender is a producer-only process that goes away after sending.
		const sender = open(jobs, { pipes: { orders }, worker: false, storage: await t.reopen() })
		await sender.pipes.orders.send({ id: 1, total: 10 })
		await orders.send({ id: 2, total: 20 })
		await expect(orders.send({ id: 3 } as never)).rejects.toBeInstanceOf(ValidationError)
		await sender.close()
		const w1 = open(jobs, { pipes: { orders } })
		const w2 = open(jobs, { pipes: { orders }, storage: await t.reopen() })
		for (let i = 0; i < 4; i++) await Promise.all([w1.drain(), w2.drain()])
		expect(seen.sort()).toEqual([
			'audit 1',
			'audit 2',
			'email INV-1',
			'email INV-2',
			'invoice 1',
			'invoice 2',
		])
		expect((await w1.getStats()).total).toMatchObject({ completed: 8, pending: 0, dead: 0 })
	})

	it('a pipe send from a handler is stored once even when the attempt is retried', async () => {
		const events = createPipe<{ n: number }>({ name: 'events' })
		const seen: number[] = []
		const listener = createJob(
			{ name: 'listener', trigger: [events.into()] },
			async ({ n }: { n: number }) => {
				seen.push(n)
			},
		)
		let attempts = 0
		const sender = createJob({ name: 'sender', retry: 2, backoff: '1s' }, async () => {
			attempts++
			await events.send({ n: 1 })
			await events.send({ n: 2 })
			if (attempts < 3) throw new Error('crash after sending')
		})
		const q = open({ listener, sender }, { pipes: { events } })
		await q.jobs.sender.start()
		for (let i = 0; i < 3; i++) {
			await q.drain()
			await clock.advance(1000)
		}
		await q.drain()
		expect(attempts).toBe(3)
		expect(seen.sort()).toEqual([1, 2])
	})

	it('a trigger whose source is not in the queue, or a pipe not in one, is a ConfigError', async () => {
		const p = createPipe<{ n: number }>({ name: 'lonely' })
		const target = createJob({ name: 'target', trigger: [p.into()] }, async () => {})
		expect(() => open({ target })).toThrow(/triggered by 'pipe lonely'/)
		await expect(p.send({ n: 1 })).rejects.toBeInstanceOf(ConfigError)
	})

	it('cron: exactly one run per tick across queues sharing the storage', async () => {
		const ticks: string[] = []
		const report = createJob({ name: 'report', cron: '*/5 * * * *' }, async (_: null, ctx) => {
			ticks.push(`${new Date(clock.now()).toISOString().slice(11, 16)} ${ctx.jobId}`)
		})
		const q1 = open({ report }, { every: '1m' })
		const q2 = open({ report }, { storage: await t.reopen(), every: '1m' })
		await Promise.all([q1.ready, q2.ready])
		for (let i = 0; i < 3; i++) {
			await clock.advance(5 * MINUTE)
			await Promise.all([q1.drain(), q2.drain()])
		}
		expect(ticks.map((x) => x.slice(0, 5))).toEqual(['00:05', '00:10', '00:15'])
		expect(ticks[0]).toContain(`spool:cron:report:${Date.UTC(2026, 0, 1, 0, 5)}`)
	})

	it('cron: catches up missed ticks after downtime only when asked', async () => {
		const runs: number[] = []
		const mk = (catchUp: boolean | number) =>
			createJob({ name: 'tick', cron: { pattern: '* * * * *', catchUp } }, async (_: null, ctx) => {
				runs.push(Number(ctx.jobId.split(':').pop()))
			})
		const q1 = open({ tick: mk(false) }, { every: '1m' })
		await q1.ready
		await clock.advance(MINUTE)
		await q1.drain()
		expect(runs).toEqual([Date.UTC(2026, 0, 1, 0, 1)])
		await q1.close()
		// Down for five minutes.
		await clock.advance(5 * MINUTE)
		const q2 = open({ tick: mk(3) }, { storage: await t.reopen(), every: '1m' })
		await q2.ready
		await turns(20)
		await q2.drain()
		expect(runs.map((at) => new Date(at).getUTCMinutes())).toEqual([1, 4, 5, 6])
		await q2.close()
		await clock.advance(3 * MINUTE)
		const q3 = open({ tick: mk(false) }, { storage: await t.reopen(), every: '1m' })
		await q3.ready
		await clock.advance(MINUTE)
		await q3.drain()
		expect(runs.map((at) => new Date(at).getUTCMinutes())).toEqual([1, 4, 5, 6, 10])
	})

	it('cron: timezones, a custom scheduler, and bad patterns refused at definition', async () => {
		const runs: number[] = []
		// 09:00 in Tokyo is 00:00 UTC.
		const morning = createJob(
			{ name: 'morning', cron: { pattern: '0 9 * * *', timezone: 'Asia/Tokyo' } },
			async (_: null, ctx) => {
				runs.push(Number(ctx.jobId.split(':').pop()))
			},
		)
		await clock.set(Date.UTC(2026, 0, 1, 23, 58))
		const q = open({ morning }, { every: '1m' })
		await q.ready
		await clock.advance(2 * MINUTE)
		await q.drain()
		expect(runs).toEqual([Date.UTC(2026, 0, 2, 0, 0)])

		const everyTenSeconds: CronScheduler = {
			next: (pattern, after) => {
				if (pattern !== 'every 10s') throw new Error('unknown pattern')
				return new Date(Math.floor(after.getTime() / 10_000) * 10_000 + 10_000)
			},
		}
		const fast: number[] = []
		const beat = createJob({ name: 'beat', cron: 'every 10s' }, async () => {
			fast.push(clock.now())
		})
		const q2 = open({ beat }, { cronScheduler: everyTenSeconds })
		await q2.ready
		for (let i = 0; i < 3; i++) {
			await clock.advance(10_000)
			await q2.drain()
		}
		expect(fast).toHaveLength(3)
		expect(() => open({ beat })).toThrow(/invalid cron 'every 10s'/)
		const bad = createJob(
			{ name: 'bad', cron: { pattern: '0 9 * * *', timezone: 'Mars/Olympus' } },
			async () => {},
		)
		expect(() => open({ bad })).toThrow(ConfigError)
	})
}
