/**
 * Opening a file log: the lock (a second process is refused, naming the owner; a dead owner's lock
 * is taken over), files that are not logs, torn tails and damage in the middle, leftovers of a
 * compaction cut short, compaction itself, and handles shared within one process.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest'
import {
	ConfigError,
	StorageCorruptError,
	StorageForeignError,
	StorageUnavailableError,
} from '../../src/errors.js'
import type { Logger } from '../../src/logger.js'
import { silentLogger } from '../../src/logger.js'
import { fileLog } from '../../src/storage/file/index.js'
import { claimParams, json, newJob, T0 } from '../conformance/harness.js'
import { exited, printed, startChild } from '../helpers/child.js'
import { bundleFixture } from './bundle.js'

let dir: string
let path: string
let holder: string

beforeAll(async () => {
	holder = await bundleFixture(join(import.meta.dirname, 'fixtures', 'holder.ts'))
}, 60_000)
afterAll(() => rmSync(holder, { force: true }))
beforeEach(() => {
	dir = mkdtempSync(join(tmpdir(), 'spool-file-open-'))
	path = join(dir, 'jobs.log')
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function recorder(): Logger & { warnings: { fields: Record<string, unknown>; message: string }[] } {
	const warnings: { fields: Record<string, unknown>; message: string }[] = []
	return { ...silentLogger, warn: (fields, message) => warnings.push({ fields, message }), warnings }
}

/** A log with a few frames: 3 enqueues, a claim, a completion. */
async function someLog(): Promise<string[]> {
	const s = fileLog({ path, logger: silentLogger })
	await s.open()
	const ids: string[] = []
	for (let i = 0; i < 3; i++) {
		const job = newJob()
		ids.push(job.id)
		await s.enqueue({ jobs: [job], now: T0 })
	}
	const [c] = await s.claim(claimParams({ limit: 1 }))
	await s.settle({
		outcomes: [{ kind: 'completed', id: c!.id, token: c!.lease.token, output: json(1) }],
		now: T0,
	})
	await s.close()
	return ids
}

it("refuses a second process, naming the owner's PID, and takes over the lock once it is killed", async () => {
	const child = startChild(holder, [path])
	await printed(child, 'ready')
	const s = fileLog({ path, logger: silentLogger })
	const err = await s.open().catch((e: unknown) => e)
	expect(err).toBeInstanceOf(StorageUnavailableError)
	expect((err as Error).message).toContain(`in use by process ${child.pid}`)
	expect(readFileSync(`${path}.lock`, 'utf8')).toBe(`${child.pid}\n${hostname()}\n`)

	child.kill('SIGKILL')
	await exited(child)
	await s.open()
	expect(readFileSync(`${path}.lock`, 'utf8')).toBe(`${process.pid}\n${hostname()}\n`)
	expect((await s.getJob({ id: 'held' }))?.status).toBe('pending')
	await s.close()
	expect(existsSync(`${path}.lock`)).toBe(false)
}, 60_000)

it('takes over a stale lock (a dead PID, an empty file) but not one from another host', async () => {
	await someLog()
	const dead = startChild(holder, [join(dir, 'other.log')])
	await printed(dead, 'ready')
	dead.kill('SIGKILL')
	await exited(dead)
	writeFileSync(`${path}.lock`, `${dead.pid}\n${hostname()}\n`)
	let s = fileLog({ path, logger: silentLogger })
	await s.open()
	await s.close()

	writeFileSync(`${path}.lock`, '')
	s = fileLog({ path, logger: silentLogger })
	await s.open()
	await s.close()

	writeFileSync(`${path}.lock`, `${process.pid}\nelsewhere.example\n`)
	const err = await fileLog({ path, logger: silentLogger })
		.open()
		.catch((e: unknown) => e)
	expect(err).toBeInstanceOf(StorageUnavailableError)
	expect((err as Error).message).toContain(`process ${process.pid} on host 'elsewhere.example'`)
}, 60_000)

it('shares one log between handles of one process', async () => {
	const a = fileLog({ path, logger: silentLogger })
	const b = fileLog({ path, logger: silentLogger })
	await a.open()
	await b.open()
	const job = newJob()
	await a.enqueue({ jobs: [job], now: T0 })
	expect((await b.claim(claimParams())).map((j) => j.id)).toEqual([job.id])
	await a.close()
	expect(existsSync(`${path}.lock`)).toBe(true)
	expect((await b.getJob({ id: job.id }))?.status).toBe('active')
	await b.close()
	expect(existsSync(`${path}.lock`)).toBe(false)
	await expect(b.getJob({ id: job.id })).rejects.toThrow(ConfigError)
})

it('refuses a file that is not a log, or one from a newer format, and leaves it alone', async () => {
	writeFileSync(path, 'hello, I am a text file\n')
	const err = await fileLog({ path, logger: silentLogger })
		.open()
		.catch((e: unknown) => e)
	expect(err).toBeInstanceOf(StorageForeignError)
	expect(readFileSync(path, 'utf8')).toBe('hello, I am a text file\n')
	expect(existsSync(`${path}.lock`)).toBe(false)

	rmSync(path)
	await someLog()
	const bytes = readFileSync(path)
	bytes.writeUInt32LE(99, 8)
	writeFileSync(path, bytes)
	const newer = await fileLog({ path, logger: silentLogger })
		.open()
		.catch((e: unknown) => e)
	expect(newer).toBeInstanceOf(StorageForeignError)
	expect((newer as Error).message).toContain('format 99')
})

it('treats a header cut short by a crash at creation as a new log', async () => {
	writeFileSync(path, Buffer.from('SPOOL'))
	const s = fileLog({ path, logger: silentLogger })
	await s.open()
	expect(await s.getStats({})).toMatchObject({ total: { pending: 0 } })
	await s.enqueue({ jobs: [newJob()], now: T0 })
	await s.close()
	expect(readFileSync(path).subarray(0, 8).toString()).toBe('SPOOLLOG')
})

it('cuts a torn tail off with a warning naming the byte offset, keeping every whole frame', async () => {
	const ids = await someLog()
	const whole = readFileSync(path).length
	appendFileSync(path, Buffer.from([40, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9])) // a frame cut short
	const logger = recorder()
	const s = fileLog({ path, logger })
	await s.open()
	expect(logger.warnings).toHaveLength(1)
	expect(logger.warnings[0]!.message).toContain(`at byte ${whole}`)
	expect(logger.warnings[0]!.fields).toMatchObject({ offset: whole, bytes: 11 })
	expect(s.openReport).toMatchObject({ truncatedAt: whole, jobs: 3 })
	for (const id of ids) expect(await s.getJob({ id })).not.toBeNull()
	await s.enqueue({ jobs: [newJob()], now: T0 })
	await s.close()
	const again = fileLog({ path, logger })
	await again.open()
	expect(logger.warnings).toHaveLength(1)
	expect((await again.getStats({})).total.pending).toBe(3)
	await again.close()
})

it('refuses a log damaged in the middle, naming the byte, and leaves the file as it was', async () => {
	await someLog()
	const bytes = readFileSync(path)
	bytes[29] = bytes[29]! ^ 0xff // inside the first frame's records (after 16 + 8 header bytes)
	writeFileSync(path, bytes)
	const err = await fileLog({ path, logger: silentLogger })
		.open()
		.catch((e: unknown) => e)
	expect(err).toBeInstanceOf(StorageCorruptError)
	expect((err as Error).message).toMatch(/damaged at byte 16 .*whole frames follow/)
	expect(readFileSync(path).equals(bytes)).toBe(true)
	expect(existsSync(`${path}.lock`)).toBe(false)
})

it('removes what a compaction cut short left behind', async () => {
	const ids = await someLog()
	writeFileSync(`${path}.compact`, 'half a snapshot')
	const s = fileLog({ path, logger: silentLogger })
	await s.open()
	expect(existsSync(`${path}.compact`)).toBe(false)
	expect(await s.getJob({ id: ids[0]! })).not.toBeNull()
	await s.close()
})

it('compacts past the bound: a snapshot of the live jobs replaces the log, pruned ones are gone', async () => {
	const s = fileLog({ path, compactAt: 8 * 1024, logger: silentLogger })
	await s.open()
	const pad = json('x'.repeat(500))
	let now = T0
	for (let round = 0; round < 20; round++) {
		await s.enqueue({ jobs: Array.from({ length: 20 }, () => newJob({ input: pad })), now })
		const claimed = await s.claim(claimParams({ limit: 20, now }))
		await s.settle({
			outcomes: claimed.map((c) => ({
				kind: 'completed' as const,
				id: c.id,
				token: c.lease.token,
				output: json(round),
			})),
			now,
		})
		now += 1000
		await s.prune({ statuses: ['completed'], before: now - 5000, limit: 1000 })
	}
	const kept = newJob({ name: 'kept', priority: 7 })
	await s.enqueue({ jobs: [kept], now })
	const { compactions, bytes } = s.stats
	expect(compactions).toBeGreaterThan(0)
	expect(bytes).toBeLessThan(400 * 500) // less than the inputs of the 400 jobs that went through it
	const before = await s.listJobs({ limit: 1000 })
	await s.close()

	const again = fileLog({ path, logger: silentLogger })
	await again.open()
	expect(again.openReport!.snapshot).toBe(true)
	expect(await again.listJobs({ limit: 1000 })).toEqual(before)
	expect((await again.getStats({})).total).toMatchObject({ completed: 100, pending: 1 })
	expect((await again.claim(claimParams({ names: ['kept'], now }))).map((j) => j.id)).toEqual([kept.id])
	await again.close()
})

it('gives the jobs a dead process held back at once, with the attempt counted', async () => {
	const s = fileLog({ path, logger: silentLogger })
	await s.open()
	const job = newJob({ maxAttempts: 2 })
	await s.enqueue({ jobs: [job], now: T0 })
	await s.claim(claimParams({ leaseMs: 3_600_000 }))
	await s.close()
	const again = fileLog({ path, logger: silentLogger })
	await again.open()
	expect((await again.getJob({ id: job.id }))?.status).toBe('active')
	expect(await again.reap({ now: T0 + 1, limit: 10 })).toMatchObject({ requeued: [job.id] })
	expect(await again.getJob({ id: job.id })).toMatchObject({ status: 'pending', attempt: 1 })
	await again.close()
})

it('keeps changes with durability interval and none', async () => {
	for (const durability of ['interval', 'none'] as const) {
		const s = fileLog({ path, durability, intervalMs: 10, logger: silentLogger })
		await s.open()
		await s.enqueue({ jobs: [newJob({ id: `d-${durability}` })], now: T0 })
		await new Promise((r) => setTimeout(r, 30))
		await s.close()
	}
	const s = fileLog({ path, logger: silentLogger })
	await s.open()
	expect((await s.getStats({})).total.pending).toBe(2)
	await s.close()
})

it('refuses bad options with ConfigError', () => {
	expect(() => fileLog({ path: '' })).toThrow(ConfigError)
	expect(() => fileLog({ path, durability: 'sometimes' as 'none' })).toThrow(/durability must be/)
	expect(() => fileLog({ path, compactAt: -1 })).toThrow(/compactAt/)
})
