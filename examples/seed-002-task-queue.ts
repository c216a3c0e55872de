/**
 * Seed 002 in spool: a persistent task queue on SQLite with producer/consumer, delayed jobs,
 * exponential backoff with jitter, a dead-letter queue with replay, concurrency, priorities and
 * the stats a dashboard shows. Run: npx tsx examples/seed-002-task-queue.ts
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createJob, createQueue, silentLogger } from '../src/index.js'
import { sqlite } from '../src/storage/sqlite/index.js'

const dir = mkdtempSync(join(tmpdir(), 'spool-seed-002-'))
const storage = sqlite({ path: join(dir, 'queue.db') }) // WAL mode, synchronous=FULL

let emailFailures = 0
const order: string[] = []
const email = createJob(
	{
		name: 'email',
		retry: 2, // 3 attempts in all, then the dead letters
		backoff: { initial: '50ms', factor: 2, max: '1s', jitter: 0.2 }, // base * 2^attempt ± jitter
	},
	async (payload: { to: string; fail?: boolean }) => {
		order.push(payload.to)
		if (payload.fail) {
			emailFailures++
			throw new Error(`mailbox ${payload.to} is full`)
		}
	},
)

// The consumer: a worker with 5 jobs at a time.
const queue = createQueue({ jobs: { email }, storage, concurrency: 5, logger: silentLogger })
await queue.ready

// The producer: priorities (lower runs first: the worker takes 'high' before 'low' when both
// wait), a delay, and one job that always fails.
await queue.enqueueMany([
	{ name: 'email', input: { to: 'low@example.com' }, options: { priority: 10 } },
	{ name: 'email', input: { to: 'high@example.com' }, options: { priority: -10 } },
	{ name: 'email', input: { to: 'later@example.com' }, options: { delay: '200ms' } },
])
const doomed = await queue.enqueue('email', { to: 'full@example.com', fail: true })

const settled = () =>
	queue
		.getStats('email')
		.then((s) => s.total.pending + s.total.active === 0 && s.total.completed + s.total.dead === 4)
while (!(await settled())) await new Promise((r) => setTimeout(r, 20))

// The dashboard's numbers (seed 002's /dashboard/stats/email).
console.log('stats:', (await queue.getStats('email')).byName.email)
console.log(
	'dead letters:',
	(await queue.dead.list({ name: 'email' })).jobs.map((j) => j.errors.at(-1)?.message),
)

// Replay from the dead-letter queue once the mailbox is fixed.
// (Counted before the replay: the worker may run the replayed job before replay() returns.)
const failuresBefore = emailFailures
if (!doomed || !(await queue.dead.replay(doomed))) throw new Error('replay failed')
while ((await queue.getJob(doomed))?.status === 'pending') await new Promise((r) => setTimeout(r, 20))
await queue.close()
rmSync(dir, { recursive: true, force: true })

if (order.indexOf('high@example.com') > order.indexOf('low@example.com'))
	throw new Error('priority not honoured')
if (order.at(-1) !== 'full@example.com' || failuresBefore !== 3) throw new Error('retries not as expected')
console.log('seed 002 example: ok')
