/**
 * The dashboard's JSON API over real HTTP, against a real SQLite queue with jobs in every state.
 */
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
	type ApiJobDetail,
	type ApiJobList,
	type ApiStats,
	type ApiThroughput,
	createDashboard,
	serveDashboard,
} from '../../src/dashboard/index.js'
import { createQueue, silentLogger } from '../../src/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { EVIL, type Seeded, seedQueue } from './fixture.js'

const TOKEN = 'test-token-123456'
let seeded: Seeded
let base: string
let close: () => Promise<void>

beforeAll(async () => {
	seeded = await seedQueue()
	const server = await serveDashboard({ queue: seeded.queue, port: 0, token: TOKEN })
	base = server.url
	close = server.close
})
afterAll(async () => {
	await close?.()
	await seeded?.cleanup()
})

async function get<T>(path: string): Promise<{ status: number; body: T; headers: Headers }> {
	const res = await fetch(new URL(path, base))
	return { status: res.status, body: (await res.json()) as T, headers: res.headers }
}

async function post<T>(path: string, init: { token?: string | null; body?: string; type?: string } = {}) {
	const headers: Record<string, string> = { 'content-type': init.type ?? 'application/json' }
	if (init.token !== null) headers.authorization = `Bearer ${init.token ?? TOKEN}`
	const res = await fetch(new URL(path, base), { method: 'POST', headers, body: init.body ?? '{}' })
	return { status: res.status, body: (await res.json()) as T }
}

describe('reading', () => {
	it('counts jobs per name and state, and per name (seed 002 /stats/:queue)', async () => {
		const { status, body } = await get<ApiStats>('api/v1/stats')
		expect(status).toBe(200)
		expect(body.total).toMatchObject({ pending: 1, active: 1, waiting: 1, dead: 1, cancelled: 1 })
		expect(body.total.completed).toBe(2)
		expect(body.byName['send-email']!.dead).toBe(1)
		const one = await get<Record<string, number>>('api/v1/stats/nightly-export')
		expect(one.body).toMatchObject({ pending: 1, cancelled: 1, completed: 0 })
	})

	it('lists jobs by state and name, pages with a cursor, and finds one by id', async () => {
		const dead = await get<ApiJobList>('api/v1/jobs?status=dead')
		expect(dead.body.jobs.map((j) => j.id)).toEqual([seeded.ids.dead])
		const byName = await get<ApiJobList>('api/v1/jobs?name=nightly-export')
		expect(byName.body.jobs.map((j) => j.status).sort()).toEqual(['cancelled', 'pending'])
		const first = await get<ApiJobList>('api/v1/jobs?limit=3')
		expect(first.body.jobs).toHaveLength(3)
		expect(first.body.nextCursor).not.toBeNull()
		const rest = await get<ApiJobList>(
			`api/v1/jobs?limit=100&cursor=${encodeURIComponent(first.body.nextCursor!)}`,
		)
		const all = [...first.body.jobs, ...rest.body.jobs].map((j) => j.id)
		expect(new Set(all).size).toBe(7)
		expect(rest.body.nextCursor).toBeNull()
		const byId = await get<ApiJobList>(`api/v1/jobs?id=${seeded.ids.waiting}`)
		expect(byId.body.jobs[0]).toMatchObject({ id: seeded.ids.waiting, status: 'waiting', name: 'approval' })
		expect((await get<ApiJobList>('api/v1/jobs?id=nope')).body.jobs).toEqual([])
	})

	it('shows one job with its steps, children, errors and stack', async () => {
		const { body } = await get<ApiJobDetail>(`api/v1/jobs/${seeded.ids.completed}`)
		expect(body.job.output).toEqual({ file: 'cat-300.png', size: { width: 1200, height: 800 } })
		expect(body.steps.map((s) => [s.name, s.state])).toEqual([
			['measure', 'completed'],
			['resize', 'completed'],
		])
		expect(body.steps[0]!.output).toEqual({ width: 1200, height: 800 })
		expect(body.children.map((c) => c.id)).toEqual([seeded.ids.child])
		const dead = await get<ApiJobDetail>(`api/v1/jobs/${seeded.ids.dead}`)
		expect(dead.body.job.errors[0]).toMatchObject({
			name: 'FatalError',
			message: expect.stringContaining('does not exist'),
		})
		expect(dead.body.job.errors[0]!.stack).toContain('FatalError')
	})

	it('sends markup in inputs as escaped JSON, never as markup', async () => {
		const res = await fetch(new URL(`api/v1/jobs/${seeded.ids.dead}`, base))
		const text = await res.text()
		expect(text).not.toContain('<script>')
		expect(text).toContain('\\u003cscript\\u003e')
		expect(res.headers.get('content-type')).toContain('application/json')
		expect((JSON.parse(text) as ApiJobDetail).job.input).toMatchObject({ note: EVIL })
	})

	it('answers unknown jobs, routes and bad parameters with named errors', async () => {
		const missing = await get<{ error: { code: string } }>('api/v1/jobs/does-not-exist')
		expect(missing.status).toBe(404)
		expect(missing.body.error.code).toBe('SPOOL_NOT_FOUND')
		expect((await get('api/v1/nothing')).status).toBe(404)
		const bad = await get<{ error: { message: string } }>('api/v1/jobs?status=bogus')
		expect(bad.status).toBe(400)
		expect(bad.body.error.message).toContain('status must be one of')
		expect((await get('api/v1/jobs?limit=0')).status).toBe(400)
		const wrongMethod = await fetch(new URL('api/v1/stats', base), { method: 'DELETE' })
		expect(wrongMethod.status).toBe(405)
	})

	it('sets a strict content security policy on every answer', async () => {
		const { headers } = await get('api/v1/stats')
		const csp = headers.get('content-security-policy')!
		expect(csp).toContain("default-src 'none'")
		expect(csp).toContain("script-src 'self'")
		expect(csp).not.toContain('unsafe-inline')
		expect(headers.get('x-content-type-options')).toBe('nosniff')
	})

	it('reports the token requirement in its config', async () => {
		const { body } = await get<{ tokenRequired: boolean; warning: string | null }>('api/v1/config')
		expect(body).toMatchObject({ tokenRequired: true, warning: null })
	})

	it('serves throughput in buckets', async () => {
		const { body } = await get<{ bucketMs: number; points: { completed: number }[] }>('api/v1/throughput')
		expect(body.bucketMs).toBe(5000)
		expect(body.points.length).toBe(120)
	})
})

describe('throughput of work done by other processes', () => {
	it('is sampled from the storage when this process runs no jobs (spool dashboard)', async () => {
		const producer = createQueue({
			storage: sqlite({ path: join(seeded.dir, 'spool.db') }),
			worker: false,
			logger: silentLogger,
		})
		const server = await serveDashboard({ queue: producer, port: 0, token: TOKEN })
		try {
			const read = async () => {
				const body = (await (await fetch(`${server.url}api/v1/throughput`)).json()) as ApiThroughput
				return body.points.reduce((sum, p) => sum + p.completed, 0)
			}
			expect(await read()).toBe(0)
			const enqueue = seeded.queue.enqueue.bind(seeded.queue) as (n: string, i: unknown) => Promise<string>
			for (let i = 0; i < 3; i++) await enqueue('nightly-export', { day: `d${i}` })
			await expect.poll(read, { timeout: 15_000, interval: 500 }).toBe(3)
		} finally {
			await server.close()
			await producer.close()
		}
	})
})

describe('actions', () => {
	it('refuse a missing or wrong token, a non-JSON body, another origin and a big body', async () => {
		const none = await post<{ error: { code: string } }>(`api/v1/dead/${seeded.ids.dead}/replay`, {
			token: null,
		})
		expect(none.status).toBe(401)
		expect(none.body.error.code).toBe('SPOOL_UNAUTHORIZED')
		expect(
			(await post(`api/v1/dead/${seeded.ids.dead}/replay`, { token: 'wrong-token-123456' })).status,
		).toBe(401)
		expect((await post(`api/v1/dead/${seeded.ids.dead}/replay`, { type: 'text/plain' })).status).toBe(415)
		const cross = await fetch(new URL(`api/v1/jobs/${seeded.ids.pending}/cancel`, base), {
			method: 'POST',
			headers: {
				'content-type': 'application/json',
				authorization: `Bearer ${TOKEN}`,
				origin: 'https://evil.example',
			},
			body: '{}',
		})
		expect(cross.status).toBe(403)
		const big = await post<{ error: { code: string } }>(`api/v1/jobs/${seeded.ids.pending}/cancel`, {
			body: JSON.stringify({ pad: 'x'.repeat(200_000) }),
		})
		expect(big.status).toBe(413)
		expect(big.body.error.code).toBe('SPOOL_PAYLOAD_TOO_LARGE')
		// Nothing happened.
		expect((await seeded.queue.getJob(seeded.ids.dead))!.status).toBe('dead')
		expect((await seeded.queue.getJob(seeded.ids.pending))!.status).toBe('pending')
	})

	it('refuse a body over the limit even without a content-length (chunked)', async () => {
		const status = await new Promise<number>((resolve, reject) => {
			const req = request(new URL(`api/v1/jobs/${seeded.ids.pending}/cancel`, base), {
				method: 'POST',
				headers: {
					'content-type': 'application/json',
					authorization: `Bearer ${TOKEN}`,
					'transfer-encoding': 'chunked',
				},
			})
			req.on('response', (res) => {
				res.resume()
				resolve(res.statusCode!)
			})
			req.on('error', reject)
			for (let i = 0; i < 20; i++) req.write('x'.repeat(10_000))
			req.end()
		})
		expect(status).toBe(413)
	})

	it('replay a dead job, and say 409 when it is not dead', async () => {
		const first = await post<{ replayed: boolean }>(`api/v1/dead/${seeded.ids.dead}/replay`)
		expect(first).toEqual({ status: 200, body: { replayed: true } })
		const again = await post<{ error: { code: string } }>(`api/v1/dead/${seeded.ids.completed}/replay`)
		expect(again.status).toBe(409)
		// It runs again and, failing fatally again, is dead again.
		await expect
			.poll(async () => (await seeded.queue.getJob(seeded.ids.dead))!.status, { timeout: 10_000 })
			.toBe('dead')
		expect((await seeded.queue.getJob(seeded.ids.dead))!.errors.length).toBeGreaterThanOrEqual(1)
	})

	it('replay all dead jobs of a name, and of every name', async () => {
		const one = await post<{ replayed: number }>('api/v1/dead/send-email/replay-all')
		expect(one.body.replayed).toBe(1)
		await expect
			.poll(async () => (await seeded.queue.getJob(seeded.ids.dead))!.status, { timeout: 10_000 })
			.toBe('dead')
		const all = await post<{ replayed: number }>('api/v1/dead/replay-all')
		expect(all.body.replayed).toBe(1)
		await expect
			.poll(async () => (await seeded.queue.getJob(seeded.ids.dead))!.status, { timeout: 10_000 })
			.toBe('dead')
	})

	it('cancel a pending job; 409 for a finished one, 404 for none', async () => {
		const ok = await post<{ status: string; previous: string }>(`api/v1/jobs/${seeded.ids.pending}/cancel`)
		expect(ok).toEqual({ status: 200, body: { status: 'cancelled', previous: 'pending' } })
		expect((await post(`api/v1/jobs/${seeded.ids.completed}/cancel`)).status).toBe(409)
		expect((await post('api/v1/jobs/nope/cancel')).status).toBe(404)
	})

	it('pause and resume a name when the queue can, 501 otherwise', async () => {
		const canPause = typeof (seeded.queue as { pause?: unknown }).pause === 'function'
		const res = await post<{ paused?: boolean }>('api/v1/names/nightly-export/pause')
		expect(res.status).toBe(canPause ? 200 : 501)
		if (canPause) {
			expect((await get<ApiStats>('api/v1/stats')).body.paused).toContain('nightly-export')
			expect((await post('api/v1/names/nightly-export/resume')).status).toBe(200)
			expect((await get<ApiStats>('api/v1/stats')).body.paused).not.toContain('nightly-export')
		}
	})
})

describe('mounting', () => {
	it('mounts under a base path in a plain http server, and warns when there is no token', async () => {
		const warnings: string[] = []
		const queue = Object.create(seeded.queue, {
			logger: { value: { ...seeded.queue.logger, warn: (_f: object, m: string) => warnings.push(m) } },
		}) as typeof seeded.queue
		const handler = createDashboard({ queue, basePath: '/admin/spool' })
		expect(warnings.join()).toContain('No token is configured')
		const server = createServer((req, res) => {
			if (req.url?.startsWith('/admin/spool')) return handler(req, res)
			res.writeHead(404).end('app')
		})
		await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
		const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
		try {
			const stats = await fetch(`${url}/admin/spool/api/v1/stats`)
			expect(stats.status).toBe(200)
			const config = (await (await fetch(`${url}/admin/spool/api/v1/config`)).json()) as { warning: string }
			expect(config.warning).toContain('No token is configured')
			// Without a token, actions are allowed (and the UI says so), still same-origin JSON only.
			const cancel = await fetch(`${url}/admin/spool/api/v1/jobs/nope/cancel`, {
				method: 'POST',
				headers: { 'content-type': 'application/json' },
			})
			expect(cancel.status).toBe(404)
			const root = await fetch(`${url}/admin/spool`, { redirect: 'manual' })
			expect(root.status).toBe(308)
			expect(root.headers.get('location')).toBe('/admin/spool/')
			expect((await fetch(`${url}/elsewhere`)).status).toBe(404)
		} finally {
			handler.close()
			await new Promise((r) => server.close(r))
		}
	})

	it('works as Express mounts it (path stripped, originalUrl kept) and takes a body parsed already', async () => {
		const handler = createDashboard({ queue: seeded.queue, token: TOKEN })
		const server = createServer((req, res) => {
			// What Express's app.use('/ops', handler) does to the request, and what express.json() adds.
			const original = req.url!
			Object.assign(req, { originalUrl: original, url: original.slice('/ops'.length) || '/', body: {} })
			handler(req, res)
		})
		await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
		const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
		try {
			expect((await fetch(`${url}/ops/api/v1/stats`)).status).toBe(200)
			const root = await fetch(`${url}/ops`, { redirect: 'manual' })
			expect(root.headers.get('location')).toBe('/ops/')
			const res = await fetch(`${url}/ops/api/v1/jobs/nope/cancel`, {
				method: 'POST',
				headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
			})
			expect(res.status).toBe(404)
		} finally {
			handler.close()
			await new Promise((r) => server.close(r))
		}
	})

	it('binds to 127.0.0.1 by default', async () => {
		const server = await serveDashboard({ queue: seeded.queue, port: 0, token: TOKEN })
		try {
			expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
		} finally {
			await server.close()
		}
	})
})
