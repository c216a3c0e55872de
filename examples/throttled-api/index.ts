/**
 * A rate-limited API caller (seed 004's musicBrainz job). Three tools, three promises:
 * - `concurrency: { limit: '2 per second', mode: 'rolling' }` on the lookup: the storage never
 *   lets more than two lookups start in any second, across every process sharing it.
 * - `throttle` in `queue` mode delays triggers over the rate (their runAt moves later).
 * - `throttle` in the default `discard` mode drops triggers over the rate: `run()` of a dropped
 *   one rejects with ThrottledError, and nothing is stored.
 * Run: npx tsx examples/throttled-api/index.ts
 */
import { z } from 'zod'
import { createJob, createQueue, silentLogger, ThrottledError } from '../../src/index.js'

/** The API we must not call more than twice a second. */
async function musicBrainz(fingerprint: string) {
	return { id: `mbid-${fingerprint}` }
}

const lookup = createJob(
	{
		name: 'musicBrainz',
		input: z.object({ fingerprint: z.string() }),
		concurrency: { id: 'musicbrainz-api', limit: '2 per second', mode: 'rolling' },
	},
	async ({ fingerprint }) => musicBrainz(fingerprint),
)
const refresh = createJob({ name: 'refresh', throttle: { duration: '1s', mode: 'queue' } }, async () => 'ok')
const ping = createJob({ name: 'ping', throttle: '1 per second' }, async () => 'pong')

const queue = createQueue({
	jobs: { lookup, refresh, ping },
	logger: silentLogger,
	worker: { pollInterval: '50ms' },
})

const handles = await queue.jobs.lookup.startMany(
	Array.from({ length: 6 }, (_, i) => ({ input: { fingerprint: `fp${i}` } })),
)
const ids = await Promise.all(handles.map((h) => h.result()))
const starts = (await Promise.all(handles.map((h) => queue.getJob(h.id)))).map((j) => j!.startedAt!.getTime())
starts.sort((a, b) => a - b)
console.log('6 lookups:', ids.map((r) => r.id).join(', '))
console.log('started at (ms after the first):', starts.map((t) => t - starts[0]!).join(', '))

const queued = await queue.jobs.refresh.startMany([
	{ input: undefined },
	{ input: undefined },
	{ input: undefined },
])
const runAts = (await Promise.all(queued.map((h) => queue.getJob(h.id)))).map((j) => j!.runAt.getTime())
console.log('refresh runAt (ms after the first):', runAts.map((t) => t - runAts[0]!).join(', '))

const first = await queue.jobs.ping.run()
const second = await queue.jobs.ping.run().catch((err: unknown) => err)
console.log('ping:', first, '| again at once:', second instanceof ThrottledError ? 'throttled' : second)
await queue.close()

for (let i = 2; i < starts.length; i++) {
	if (starts[i]! - starts[i - 2]! < 1000) throw new Error('more than two lookups started within a second')
}
if (runAts[1]! - runAts[0]! !== 1000 || runAts[2]! - runAts[1]! !== 1000) {
	throw new Error('queue mode should space the triggers one second apart')
}
if (!(second instanceof ThrottledError)) throw new Error('the second ping should have been throttled')
console.log('throttled API example: ok')
