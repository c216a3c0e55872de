/**
 * Seed 003 in spool (on SQLite: no MongoDB here): dedupe keys with two scopes, claimOrEnqueue for
 * "run it now, never two at once, coalesce a burst into one follow-up", ctx.complete / failFatal,
 * getStats, and the test doubles (a recording storage, inline execution).
 * Run: npx tsx examples/seed-003-single-flight.ts
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createJob, createQueue, type JobContext, silentLogger } from '../src/index.js'
import { sqlite } from '../src/storage/sqlite/index.js'
import { recordingStorage } from '../src/testing/index.js'

const dir = mkdtempSync(join(tmpdir(), 'spool-seed-003-'))
let reschedules = 0
/** Read through a function: the count changes behind the type checker's back. */
const runs = () => reschedules
const reschedule = createJob({ name: 'reschedule' }, async (_input: { userId: string }, ctx: JobContext) => {
	reschedules++
	ctx.log('rescheduled by the poll loop')
	await ctx.complete()
})
const welcome = createJob({ name: 'welcome-email' }, async (input: { userId: string }, ctx: JobContext) => {
	if (input.userId === 'banned') return ctx.failFatal('user is banned')
})

const queue = createQueue({
	jobs: { reschedule, welcome },
	storage: sqlite({ path: join(dir, 'app.db') }),
	logger: silentLogger,
})
await queue.ready

// Dedupe, scope 'pending+active' (default): a second enqueue while the first waits returns null.
const first = await queue.enqueue('welcome-email', { userId: 'u_123' }, { dedupeKey: 'welcome-email:u_123' })
const second = await queue.enqueue('welcome-email', { userId: 'u_123' }, { dedupeKey: 'welcome-email:u_123' })
if (!first || second !== null) throw new Error('dedupe failed')
await queue.enqueue('welcome-email', { userId: 'banned' })

// Single-flight: we win the slot and run inline; a burst behind us coalesces into one follow-up.
const opts = { dedupeKey: 'reschedule:u1', dedupeScope: 'pending' as const }
const handle = await queue.claimOrEnqueue('reschedule', { userId: 'u1' }, opts)
if (!handle) throw new Error('expected to win the slot')
const burst = await Promise.all(
	[1, 2, 3].map(() => queue.claimOrEnqueue('reschedule', { userId: 'u1' }, opts)),
)
if (burst.some((h) => h !== null)) throw new Error('a second run started while one was running')
reschedules++ // our inline run
await handle.complete()

while ((await queue.getStats()).total.pending + (await queue.getStats()).total.active > 0) {
	await new Promise((r) => setTimeout(r, 20))
}
const stats = await queue.getStats()
console.log('getStats:', stats.byName)
if (runs() !== 2) throw new Error(`expected the inline run plus one follow-up, got ${reschedules}`)
if (stats.byName['welcome-email']?.dead !== 1) throw new Error('failFatal should dead-letter at once')
await queue.close()

// Test doubles: record enqueues without running (DummyBackend) ...
const recording = recordingStorage()
const recorder = createQueue({ jobs: { welcome }, storage: recording, logger: silentLogger })
await recorder.enqueue('welcome-email', { userId: 'u_42' }, { dedupeKey: 'thing:42' })
if (recording.jobs[0]?.dedupeKey !== 'thing:42') throw new Error('recording storage did not record')
await recorder.close()
// ... or run handlers inside the enqueuing call (ImmediateBackend).
const inline = createQueue({ jobs: { reschedule }, worker: { inline: true }, logger: silentLogger })
await inline.enqueue('reschedule', { userId: 'u2' })
if (runs() !== 3) throw new Error('inline execution did not run the handler')
await inline.close()
rmSync(dir, { recursive: true, force: true })
console.log('seed 003 example: ok')
