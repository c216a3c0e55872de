/**
 * A PostgreSQL restart under running workers, on a private cluster (initdb in a temp folder, its
 * own port) so the shared server other suites use is never touched. Needs initdb/pg_ctl and a
 * `postgres` system user to run them as (root can run neither itself); skipped, visibly, without.
 */
import { execFileSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createQueue, silentLogger } from '../../src/index.js'
import { migrate, postgres } from '../../src/storage/postgres/index.js'
import { exited, printed, startChild, until } from '../helpers/child.js'

const WORKER = join(import.meta.dirname, 'fixtures', 'worker.ts')
const BIN = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'].find(
	(d) => existsSync(join(d, 'initdb')),
)
const uid = (() => {
	try {
		return Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
	} catch {
		return null
	}
})()
const usable = BIN !== undefined && uid !== null && process.getuid?.() === 0

let dir = ''
const port = 40000 + (process.pid % 20000)
const url = `postgres://postgres@127.0.0.1:${port}/postgres`
const pgctl = (...args: string[]) =>
	execFileSync('runuser', ['-u', 'postgres', '--', join(BIN!, 'pg_ctl'), '-D', join(dir, 'data'), ...args], {
		stdio: 'ignore',
	})

beforeAll(() => {
	if (!usable) return
	dir = mkdtempSync(join(tmpdir(), 'spool-pg-restart-'))
	chownSync(dir, uid!, uid!)
	execFileSync(
		'runuser',
		['-u', 'postgres', '--', join(BIN!, 'initdb'), '-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres'],
		{ stdio: 'ignore' },
	)
	pgctl('-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, '-l', join(dir, 'log'), '-w', 'start')
}, 60_000)
afterAll(() => {
	if (!dir) return
	try {
		pgctl('-m', 'immediate', '-w', 'stop')
	} catch {
		// Not running.
	}
	rmSync(dir, { recursive: true, force: true })
})

it.skipIf(!usable)(
	'workers keep going through a PostgreSQL restart: they report it, retry with backoff, resume, lose nothing',
	async () => {
		await migrate({ connectionString: url, schema: 'spool' })
		const producer = createQueue<{ work: { n: number } }>({
			storage: postgres({ connectionString: url, poolSize: 2 }),
			worker: false,
			logger: silentLogger,
		})
		await producer.ready
		const n = 4000
		await producer.enqueueMany(
			Array.from({ length: n }, (_, k) => ({ name: 'work' as const, input: { n: k } })),
		)
		const completed = async () => {
			try {
				return (await producer.getStats()).total.completed
			} catch {
				return -1 // the server is restarting
			}
		}
		const runs = mkdtempSync(join(tmpdir(), 'spool-pg-restart-runs-'))
		const ws = [0, 1].map(() =>
			startChild(WORKER, ['spool', runs, '25', '5000', '1'], { DATABASE_URL: url, APP: 'spool_restart' }),
		)
		try {
			await Promise.all(ws.map((c) => printed(c, 'ready')))
			await until(async () => (await completed()) >= n / 4, 60_000, 'a quarter done')
			pgctl('-m', 'fast', '-w', 'restart')
			await until(async () => (await completed()) === n, 90_000, 'all jobs completed after the restart')
			for (const c of ws) c.kill('SIGTERM')
			for (const c of ws) await exited(c)
			const stats = await producer.getStats()
			expect(stats.total).toMatchObject({ completed: n, pending: 0, active: 0, dead: 0 })
			const counts = new Map<string, number>()
			for (const f of readdirSync(runs)) {
				for (const id of readFileSync(join(runs, f), 'utf8').split('\n')) {
					if (id) counts.set(id, (counts.get(id) ?? 0) + 1)
				}
			}
			expect(counts.size).toBe(n)
			// They said so.
			expect(ws.map((c) => c.output.join('')).join('\n')).toMatch(/cannot be reached|connection lost|dropped/)
		} finally {
			for (const c of ws) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
			await producer.close()
			rmSync(runs, { recursive: true, force: true })
		}
	},
	180_000,
)
