/**
 * A real queue on a real SQLite file with jobs in every state, for the dashboard's API and
 * browser tests: completed (with steps and a child), dead (its input holds `<script>`), active,
 * pending (delayed), waiting, cancelled.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createQueue, FatalError, type JobContext, type Queue, silentLogger } from '../../src/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { until } from '../helpers/child.js'

/** The script-bearing input of the dead job. */
export const EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'

export interface Seeded {
	readonly queue: Queue
	readonly dir: string
	readonly ids: {
		readonly completed: string
		readonly child: string
		readonly dead: string
		readonly active: string
		readonly pending: string
		readonly waiting: string
		readonly cancelled: string
	}
	/** Lets the active job finish. */
	release(): void
	/** Closes the queue and deletes the files. */
	cleanup(): Promise<void>
}

/** Builds the queue and waits until every job is in its state. */
export async function seedQueue(): Promise<Seeded> {
	const dir = mkdtempSync(join(tmpdir(), 'spool-dash-'))
	let release!: () => void
	const gate = new Promise<void>((r) => {
		release = r
	})
	let queue!: Queue
	const jobs = {
		'resize-image': async (input: { file: string }, ctx: JobContext) => {
			const size = await ctx.run('measure', () => ({ width: 1200, height: 800 }))
			await ctx.run('resize', () => ({ width: 300 }))
			await queue.enqueue('thumbnail', { of: input.file })
			return { file: input.file.replace('.png', '-300.png'), size }
		},
		thumbnail: async () => ({ ok: true }),
		'send-email': async (input: { to: string; note: string }) => {
			throw new FatalError(`mailbox ${input.to} does not exist`)
		},
		'slow-report': async () => {
			await gate
			return { rows: 3 }
		},
		'nightly-export': async () => ({ done: true }),
	}
	queue = createQueue({
		jobs,
		storage: sqlite({ path: join(dir, 'spool.db') }),
		logger: silentLogger,
		worker: { pollInterval: '50ms', maintenanceInterval: '100ms' },
	}) as unknown as Queue
	await queue.ready
	const enqueue = queue.enqueue.bind(queue) as (n: string, i?: unknown, o?: object) => Promise<string>
	const completed = await enqueue('resize-image', { file: 'cat.png' })
	const dead = await enqueue('send-email', { to: 'nobody@example.com', note: EVIL })
	const active = await enqueue('slow-report', { month: '2026-11' })
	const pending = await enqueue('nightly-export', { day: 'tomorrow' }, { delay: '1h' })
	const cancelled = await enqueue('nightly-export', { day: 'never' }, { delay: '1h' })
	await queue.cancel(cancelled)
	// A waiting job, put there through the storage contract (a handler suspended on a timer).
	const now = Date.now()
	const waiting = 'job-waiting-1'
	await queue.storage.enqueue({
		jobs: [
			{
				id: waiting,
				name: 'approval',
				input: '{"request":42}' as never,
				priority: 0,
				runAt: now,
				maxAttempts: 1,
				dedupeKey: null,
				dedupeScope: 'pending+active',
				idempotencyKey: null,
				parentId: null,
				backoff: null,
			},
		],
		now,
	})
	const [claimed] = await queue.storage.claim({
		names: ['approval'],
		owner: 'fixture',
		limit: 1,
		leaseMs: 60_000,
		now,
	})
	await queue.storage.settle({
		outcomes: [{ kind: 'suspended', id: waiting, token: claimed!.lease.token, wakeAt: now + 3_600_000 }],
		now,
	})
	let child = ''
	await until(
		async () => {
			const [c, d, a] = await Promise.all([queue.getJob(completed), queue.getJob(dead), queue.getJob(active)])
			const kids = await queue.listJobs({ parentId: completed })
			child = kids.jobs[0]?.id ?? ''
			const k = child ? await queue.getJob(child) : null
			return (
				c?.status === 'completed' &&
				d?.status === 'dead' &&
				a?.status === 'active' &&
				k?.status === 'completed'
			)
		},
		15_000,
		'the seeded jobs to reach their states',
	)
	return {
		queue,
		dir,
		ids: { completed, child, dead, active, pending, waiting, cancelled },
		release,
		cleanup: async () => {
			release()
			await queue.close({ timeout: '2s' })
			rmSync(dir, { recursive: true, force: true })
		},
	}
}
