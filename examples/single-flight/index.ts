/**
 * Single-flight coalescing (seed 003): "run it now, never two at once for one user, and coalesce a
 * burst into at most one follow-up". Webhooks for a user arrive in bursts; each calls
 * claimOrEnqueue with dedupeScope 'pending'. The first caller wins the slot and runs inline; while
 * it runs, the burst leaves exactly one job queued behind it, which a worker runs once the first
 * is done. A per-user concurrency key makes the same promise to jobs started any other way.
 * Run: npx tsx examples/single-flight/index.ts
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createJob, createQueue, silentLogger } from '../../src/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'

const dir = mkdtempSync(join(tmpdir(), 'spool-single-flight-'))
const runs: string[] = []
let running = 0
let overlap = false

async function reschedule(userId: string, by: string) {
	running++
	if (running > 1) overlap = true
	runs.push(`${userId} by ${by}`)
	await new Promise((r) => setTimeout(r, 50)) // the calendar sync
	running--
}

const sync = createJob(
	{
		name: 'reschedule',
		// However a run starts, at most one per user runs at a time, across every process.
		concurrency: ({ userId }: { userId: string }) => ({ id: `user:${userId}`, limit: 1 }),
	},
	async ({ userId }: { userId: string }) => reschedule(userId, 'worker'),
)

const queue = createQueue({
	jobs: { sync },
	storage: sqlite({ path: join(dir, 'app.db') }),
	logger: silentLogger,
	worker: { pollInterval: '50ms' },
})
await queue.ready

/** A webhook handler: run now if nobody is, else make sure one run follows. */
async function onWebhook(userId: string) {
	const handle = await queue.claimOrEnqueue(
		'reschedule',
		{ userId },
		{ dedupeKey: `reschedule:${userId}`, dedupeScope: 'pending' },
	)
	if (!handle) return 'coalesced'
	try {
		await reschedule(userId, 'webhook')
		await handle.complete()
	} catch (err) {
		await handle.fail(err)
	}
	return 'ran inline'
}

// A burst of ten webhooks for one user, at once.
const outcomes = await Promise.all(Array.from({ length: 10 }, () => onWebhook('u1')))
console.log(
	'burst:',
	outcomes.filter((o) => o === 'ran inline').length,
	'inline,',
	outcomes.filter((o) => o === 'coalesced').length,
	'coalesced',
)

// Wait for the one follow-up the burst left behind.
for (let i = 0; i < 100 && runs.length < 2; i++) await new Promise((r) => setTimeout(r, 20))
await queue.drain()
console.log('runs:', runs)
await queue.close()
rmSync(dir, { recursive: true, force: true })

if (outcomes.filter((o) => o === 'ran inline').length !== 1)
	throw new Error('expected exactly one inline run')
if (runs.length !== 2 || runs[1] !== 'u1 by worker')
	throw new Error(`expected one follow-up, got ${runs.join(', ')}`)
if (overlap) throw new Error('two runs for one user overlapped')
console.log('single-flight example: ok')
