/**
 * SIGKILL crash test of the file log: a child process works 10,000 jobs (half enqueued before,
 * half by the child itself) over a log that compacts often (each run adds big jobs deleted once
 * done), and is killed at random moments twenty
 * times. After each kill this process opens the log (taking the dead child's lock over) and checks
 * that nothing acknowledged was lost; after a last, unkilled run every job is completed.
 *
 * The child is bundled once with esbuild so that each of the 21 starts takes a fraction of a second.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'esbuild'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createQueue, silentLogger } from '../../src/index.js'
import { fileLog } from '../../src/storage/file/index.js'
import { exited, printed, startChild } from '../helpers/child.js'

const EARLY = 5000
const LATE = 5000
const COMPACT_AT = 64 * 1024
let dir: string
let bundle: string

beforeAll(async () => {
	dir = mkdtempSync(join(tmpdir(), 'spool-file-crash-'))
	// Inside the repository, so the bundle's imports of packages resolve to node_modules.
	const out = join(import.meta.dirname, '..', '..', 'node_modules', '.cache', 'spool-test')
	mkdirSync(out, { recursive: true })
	bundle = join(out, `crash-worker-${process.pid}.mjs`)
	await build({
		entryPoints: [join(import.meta.dirname, 'fixtures', 'crash-worker.ts')],
		outfile: bundle,
		bundle: true,
		platform: 'node',
		format: 'esm',
		target: 'node20',
		packages: 'external',
		logLevel: 'error',
	})
}, 60_000)

afterAll(() => {
	rmSync(dir, { recursive: true, force: true })
	rmSync(bundle, { force: true })
})

function lines(prefix: string): string[] {
	const out: string[] = []
	for (const f of readdirSync(dir).filter((f) => f.startsWith(prefix))) {
		for (const id of readFileSync(join(dir, f), 'utf8').split('\n')) if (id) out.push(id)
	}
	return out
}

function start(path: string, finish = false) {
	return startChild(bundle, [path, dir, String(LATE), String(COMPACT_AT), ...(finish ? ['finish'] : [])], {
		SPOOL_TOTAL: String(EARLY + LATE),
	})
}

it('loses no job across twenty SIGKILLs at random moments, compaction included', async () => {
	const path = join(dir, 'jobs.log')
	const producer = createQueue<{ work: { n: number } }>({
		storage: fileLog({ path, logger: silentLogger }),
		worker: false,
		logger: silentLogger,
	})
	for (let i = 0; i < EARLY; i += 500) {
		await producer.enqueueMany(
			Array.from({ length: 500 }, (_, k) => ({
				name: 'work' as const,
				input: { n: i + k },
				options: { id: `early-${i + k}` },
			})),
		)
	}
	await producer.close()

	let compacted = 0
	let killedMidWork = 0
	for (let round = 0; round < 20; round++) {
		const t0 = Date.now()
		const child = start(path)
		await printed(child, 'ready')
		const t1 = Date.now()
		await new Promise((r) => setTimeout(r, 100 + Math.random() * 1400))
		child.kill('SIGKILL')
		expect((await exited(child)).signal).toBe('SIGKILL')

		// Open the dead child's log here: its lock is stale and taken over. Whatever it
		// acknowledged must be there: each enqueued job, and each completion.
		const storage = fileLog({ path, logger: silentLogger })
		await storage.open()
		const report = storage.openReport!
		if (report.snapshot) compacted++
		const jobs = new Map((await storage.listJobs({ limit: 100_000 })).jobs.map((j) => [j.id, j.status]))
		await storage.close()
		expect(lines('enq-').filter((id) => !jobs.has(id))).toEqual([])
		expect(lines('acks-').filter((id) => jobs.get(id) !== 'completed')).toEqual([])
		const work = [...jobs.keys()].filter((id) => id.startsWith('early-') || id.startsWith('late-'))
		expect(work.length).toBeLessThanOrEqual(EARLY + LATE)
		const completed = work.filter((id) => jobs.get(id) === 'completed').length
		if (completed > 0 && completed < EARLY + LATE) killedMidWork++
		if (process.env.DEBUG_CRASH) {
			console.log(round, t1 - t0, Date.now() - t1, JSON.stringify(report), completed)
		}
	}
	expect(compacted).toBeGreaterThan(0)
	expect(killedMidWork).toBeGreaterThan(0)

	const last = start(path, true)
	const { code } = await exited(last)
	const output = last.output.join('')
	expect(code, output).toBe(0)
	const done = JSON.parse(output.slice(output.indexOf('done ') + 5).split('\n')[0]!)
	expect(done).toMatchObject({ completed: EARLY + LATE, pending: 0, active: 0, waiting: 0, dead: 0 })

	// Every job is completed; none is left, none was invented.
	const storage = fileLog({ path, logger: silentLogger })
	await storage.open()
	expect((await storage.getStats({})).total).toMatchObject({
		completed: EARLY + LATE,
		pending: 0,
		active: 0,
		waiting: 0,
		dead: 0,
		cancelled: 0,
	})
	for (let i = 0; i < EARLY; i++)
		expect((await storage.getJob({ id: `early-${i}` }))?.status).toBe('completed')
	for (let i = 0; i < LATE; i++) expect((await storage.getJob({ id: `late-${i}` }))?.status).toBe('completed')
	await storage.close()
}, 120_000)
