/**
 * The `spool` command as a real child process (through tsx) on a real SQLite file.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createQueue, FatalError, silentLogger } from '../../src/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { exited, printed, until } from '../helpers/child.js'
import { buildCli } from './build.js'

let CLI: string
const JOBS = join(import.meta.dirname, 'fixtures', 'jobs.ts')
let dir: string
let url: string

/** Runs the bundled CLI with plain node (no tsx: it starts in a fraction of the time). */
function run(args: string[], env: Record<string, string>): ChildProcess & { output: string[] } {
	const child = spawn(process.execPath, [CLI, ...args], {
		env: { ...process.env, SPOOL_URL: url, ...env },
		stdio: ['ignore', 'pipe', 'pipe'],
	}) as ChildProcess & { output: string[] }
	child.output = []
	child.stdout?.on('data', (d: Buffer) => child.output.push(d.toString()))
	child.stderr?.on('data', (d: Buffer) => child.output.push(d.toString()))
	return child
}

/**
 * The child's exit code once its output is read to the end: 'close', not 'exit', which can come
 * first (seen in CI under load: `spool stats` exited 0 with none of its stdout read yet).
 */
function closed(child: ChildProcess): Promise<{ code: number | null }> {
	return new Promise((resolve) => child.once('close', (code: number | null) => resolve({ code })))
}

async function spool(args: string[], env: Record<string, string> = {}) {
	const child = run(args, env)
	const stdout: string[] = []
	child.stdout?.on('data', (d: Buffer) => stdout.push(d.toString()))
	const { code } = await closed(child)
	return { code, stdout: stdout.join(''), output: child.output.join('') }
}

let deadId: string
let doneId: string

beforeAll(async () => {
	CLI = await buildCli()
	dir = mkdtempSync(join(tmpdir(), 'spool-cli-'))
	url = `sqlite:${join(dir, 'q.db')}`
	const queue = createQueue({
		jobs: {
			ok: async (i: { n: number }) => ({ double: i.n * 2 }),
			bad: async () => {
				throw new FatalError('no way')
			},
		},
		storage: sqlite({ path: join(dir, 'q.db') }),
		logger: silentLogger,
		worker: { inline: true },
	})
	doneId = (await queue.enqueue('ok', { n: 21 }))!
	deadId = (await queue.enqueue('bad', undefined as never))!
	await queue.close()
})
afterAll(() => {
	rmSync(dir, { recursive: true, force: true })
	rmSync(dirname(CLI), { recursive: true, force: true })
})

describe.concurrent('reading', { timeout: 60_000 }, () => {
	it('stats: a table for people, JSON with --json', async () => {
		const human = await spool(['stats'])
		expect(human.code).toBe(0)
		expect(human.stdout).toMatch(/NAME\s+PENDING\s+ACTIVE/)
		expect(human.stdout).toMatch(/bad\s+0\s+0\s+0\s+0\s+1\s+0/)
		const json = await spool(['stats', '--json'])
		expect(JSON.parse(json.stdout)).toMatchObject({
			total: { completed: 1, dead: 1 },
			byName: { ok: { completed: 1 } },
		})
	})

	it('jobs list and show; a missing job exits 3', async () => {
		const list = await spool(['jobs', 'list', '--status', 'completed', '--json'])
		expect(list.code).toBe(0)
		expect(JSON.parse(list.stdout).jobs.map((j: { id: string }) => j.id)).toEqual([doneId])
		const show = await spool(['jobs', 'show', deadId])
		expect(show.code).toBe(0)
		expect(show.stdout).toContain('FatalError: no way')
		const json = await spool(['jobs', 'show', doneId, '--json'])
		expect(JSON.parse(json.stdout).job.output).toEqual({ double: 42 })
		const missing = await spool(['jobs', 'show', 'nope'])
		expect(missing.code).toBe(3)
		expect(missing.output).toContain('nope')
	})

	it('bad usage exits 2 with a clear message', async () => {
		const unknown = await spool(['frobnicate'])
		expect(unknown.code).toBe(2)
		expect(unknown.output).toContain("unknown command 'frobnicate'")
		const badStatus = await spool(['jobs', 'list', '--status', 'weird'])
		expect(badStatus.code).toBe(2)
		expect(badStatus.output).toContain('--status must be one of')
		const scheme = await spool(['stats'], { SPOOL_URL: 'redis://localhost' })
		expect(scheme.code).toBe(2)
		expect(scheme.output).toContain('use sqlite:path/to/file.db, file:path/to/spool.log or postgres://')
		const json = await spool(['enqueue', 'ok', '{not json'])
		expect(json.code).toBe(2)
		expect(json.output).toContain('not valid JSON')
	})

	it('a storage that cannot be opened exits 4', async () => {
		const r = await spool(['stats', '--storage', `sqlite:${join(dir, 'not-a-db')}/x/../../q.db/inside.db`])
		expect(r.code).toBe(4)
		expect(r.output).toContain('Could not open the storage')
	})
})

describe('acting', { timeout: 60_000 }, () => {
	it('dead list, replay one (3 when not dead), replay --all', async () => {
		const list = await spool(['dead', 'list', '--json'])
		expect(JSON.parse(list.stdout).jobs.map((j: { id: string }) => j.id)).toEqual([deadId])
		const notDead = await spool(['dead', 'replay', doneId])
		expect(notDead.code).toBe(3)
		expect(notDead.output).toContain('completed, not dead')
		const one = await spool(['dead', 'replay', deadId])
		expect(one.code).toBe(0)
		expect(one.stdout).toContain('Replayed 1 dead job(s).')
		const none = await spool(['dead', 'replay', '--all', '--json'])
		expect(JSON.parse(none.stdout)).toEqual({ replayed: 0 })
	})

	it('enqueue prints the id; migrate and prune work on SQLite', async () => {
		const r = await spool(['enqueue', 'ok', '{"n":5}', '--delay', '1h', '--json'])
		expect(r.code).toBe(0)
		const { id } = JSON.parse(r.stdout) as { id: string }
		const show = await spool(['jobs', 'show', id, '--json'])
		expect(JSON.parse(show.stdout).job).toMatchObject({ name: 'ok', status: 'pending', input: { n: 5 } })
		expect((await spool(['migrate'])).stdout).toContain('Migrated sqlite:')
		const prune = await spool(['prune', '--older-than', '0ms', '--status', 'completed', '--json'])
		expect(JSON.parse(prune.stdout)).toEqual({ deleted: 1 })
	})

	it('pause and resume a name, durably', async () => {
		const reader = createQueue({
			storage: sqlite({ path: join(dir, 'q.db') }),
			worker: false,
			logger: silentLogger,
		})
		try {
			expect((await spool(['pause', 'ok'])).stdout).toContain('Paused ok.')
			expect(await reader.listPaused()).toEqual(['ok'])
			expect((await spool(['resume', 'ok', '--json'])).stdout).toContain('"paused": false')
			expect(await reader.listPaused()).toEqual([])
		} finally {
			await reader.close()
		}
	})

	it('the file log through file:, and its lock held by another process (exit 4)', async () => {
		const address = `file:${join(dir, 'log', 'spool.log')}`
		const enq = await spool(['enqueue', 'logged', '{"y":2}', '--json', '--storage', address])
		expect(enq.code, enq.output).toBe(0)
		const stats = await spool(['stats', '--json', '--storage', address])
		expect(JSON.parse(stats.stdout).byName.logged.pending).toBe(1)
		const dash = run(['dashboard', '--port', '0', '--storage', address], {})
		try {
			await printed(dash, 'spool dashboard on')
			const locked = await spool(['stats', '--storage', address])
			expect(locked.code).toBe(4)
			expect(locked.output).toContain('Could not open the storage')
		} finally {
			dash.kill('SIGKILL')
			await exited(dash)
		}
	})

	it('PostgreSQL: migrate, enqueue, stats and show through postgres://', async () => {
		const db = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
		const client = new pg.Client({ connectionString: db })
		await client.connect()
		await client.query('DROP SCHEMA IF EXISTS spool_cli_test CASCADE')
		await client.end()
		const address = `${db}${db.includes('?') ? '&' : '?'}schema=spool_cli_test`
		const migrated = await spool(['migrate', '--storage', address])
		expect(migrated.code, migrated.output).toBe(0)
		expect(migrated.stdout).toMatch(/spool_cli_test \(applied .+\)/)
		const again = await spool(['migrate', '--storage', address])
		expect(again.stdout, again.output).toContain('(up to date)')
		const enq = await spool(['enqueue', 'pg-job', '{"x":1}', '--json', '--storage', address])
		expect(enq.code, enq.output).toBe(0)
		const { id } = JSON.parse(enq.stdout) as { id: string }
		const stats = await spool(['stats', '--json', '--storage', address])
		expect(stats.code, stats.output).toBe(0)
		expect(JSON.parse(stats.stdout).byName['pg-job'].pending).toBe(1)
		const show = await spool(['jobs', 'show', id, '--json', '--storage', address])
		expect(show.code, show.output).toBe(0)
		expect(JSON.parse(show.stdout).job).toMatchObject({ id, input: { x: 1 } })
	})
})

describe('long-running commands', () => {
	it('worker runs the jobs of a module and shuts down gracefully on SIGTERM', async () => {
		const worker = run(['worker', JOBS, '--concurrency', '4'], {})
		try {
			await printed(worker, 'Ctrl-C stops')
			expect(worker.output.join('')).toContain('2 job(s) (greet, slow)')
			const greet = await spool(['enqueue', 'greet', '{"who":"ada"}', '--json'])
			const greetId = JSON.parse(greet.stdout).id as string
			const slow = await spool(['enqueue', 'slow', '{"ms":1500}', '--json'])
			const slowId = JSON.parse(slow.stdout).id as string
			const reader = createQueue({
				storage: sqlite({ path: join(dir, 'q.db') }),
				worker: false,
				logger: silentLogger,
			})
			const status = async (id: string) => (await reader.getJob(id))?.status
			try {
				await until(async () => (await status(slowId)) === 'active', 15_000, 'the slow job to start')
			} catch (err) {
				throw new Error(`${(err as Error).message}; worker output:\n${worker.output.join('')}`)
			}
			const done = closed(worker)
			worker.kill('SIGTERM')
			const { code } = await done
			expect(code).toBe(0)
			expect(worker.output.join('')).toContain('letting running jobs finish')
			expect(await status(greetId)).toBe('completed')
			// The running job was allowed to finish before the process left.
			expect(await status(slowId)).toBe('completed')
			await reader.close()
		} finally {
			if (worker.exitCode === null) worker.kill('SIGKILL')
		}
	}, 60_000)

	it('dashboard serves the API and stops on SIGINT', async () => {
		const dash = run(['dashboard', '--port', '0', '--metrics'], { SPOOL_TOKEN: 'cli-token-123456' })
		try {
			await printed(dash, 'spool dashboard on')
			const address = /http:\/\/127\.0\.0\.1:\d+\//.exec(dash.output.join(''))![0]
			expect(dash.output.join('')).toContain('#token=cli-token-123456')
			const stats = (await (await fetch(`${address}api/v1/stats`)).json()) as {
				byName: Record<string, unknown>
			}
			expect(Object.keys(stats.byName)).toContain('ok')
			const metrics = await (await fetch(`${address}metrics`)).text()
			expect(metrics).toContain('spool_jobs{name="ok",state="pending"} 1')
			dash.kill('SIGINT')
			expect((await exited(dash)).code).toBe(0)
		} finally {
			if (dash.exitCode === null) dash.kill('SIGKILL')
		}
	}, 30_000)
})
