/**
 * The in-process hand-off (`enqueueAndClaim`) keeps every lease guarantee: a job claimed by its
 * enqueue's own transaction, held by a process that is then killed, is taken back by the reaper
 * once its lease expires and runs elsewhere, its lost attempt counted.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { createQueue, type JobContext, silentLogger } from '../../src/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { exited, printed, startChild, until } from '../helpers/child.js'

const FIXTURE = join(import.meta.dirname, 'fixtures', 'handoff.ts')
let dir: string
beforeEach(() => {
	dir = mkdtempSync(join(tmpdir(), 'spool-handoff-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

it('a job handed off at enqueue to a process that dies is reaped and run by another', async () => {
	const db = join(dir, 'spool.db')
	const child = startChild(FIXTURE, [db, '500'])
	await printed(child, 'started ')
	const line = child.output
		.join('')
		.split('\n')
		.find((l) => l.startsWith('started '))!
	const [, id, flag] = /^started (\S+) handed-off=(\w+)$/.exec(line)!
	expect(flag).toBe('true')
	child.kill('SIGKILL')
	expect((await exited(child)).signal).toBe('SIGKILL')

	const ran: string[] = []
	const queue = createQueue({
		jobs: { hang: async (_input: null, ctx: JobContext) => void ran.push(ctx.jobId) },
		storage: sqlite({ path: db }),
		logger: silentLogger,
		worker: { pollInterval: 50, maintenanceInterval: 100 },
	})
	try {
		const held = await queue.getJob(id!)
		expect(held).toMatchObject({ status: 'active', attempt: 1 })
		await until(async () => (await queue.getJob(id!))?.status === 'completed', 20_000, 'the job to complete')
		expect(ran).toEqual([id])
		const done = await queue.getJob(id!)
		expect(done?.attempt).toBe(2)
		expect(done?.errors.map((e) => e.code)).toEqual(['SPOOL_LEASE_LOST'])
	} finally {
		await queue.close()
	}
}, 60_000)
