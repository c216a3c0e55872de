/**
 * A cron job: a report every second (six-field pattern, with seconds) in a timezone, run by two
 * queues sharing one SQLite file, as two processes would: each tick runs exactly once. After a
 * "restart", `catchUp` enqueues the ticks missed while nothing ran. Runs about 4 seconds; in your
 * app use a five-field pattern such as '0 * * * *' (hourly).
 * Run: npx tsx examples/cron/index.ts
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createJob, createQueue, type JobContext, silentLogger } from '../../src/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'

const dir = mkdtempSync(join(tmpdir(), 'spool-cron-'))
const path = join(dir, 'app.db')
const ticks: string[] = []

const report = createJob(
	{ name: 'report', cron: { pattern: '* * * * * *', timezone: 'Europe/Paris', catchUp: 5 } },
	async (_input: null, ctx: JobContext) => {
		ticks.push(ctx.jobId)
	},
)

const open = () =>
	createQueue({
		jobs: { report },
		storage: sqlite({ path }),
		logger: silentLogger,
		worker: { pollInterval: '50ms' },
	})
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// Two "processes" for 2.5 seconds.
const a = open()
const b = open()
await sleep(2500)
await Promise.all([a.close(), b.close()])
const live = ticks.length
console.log(`${live} ticks in 2.5 s by two queues:`, ticks)

// Down for 1.2 seconds, then one starts again and catches up.
await sleep(1200)
const c = open()
await c.ready
await sleep(300)
await c.drain()
await c.close()
console.log(`after the restart: ${ticks.length - live} more ticks (missed ones caught up)`)
rmSync(dir, { recursive: true, force: true })

if (new Set(ticks).size !== ticks.length) throw new Error('a tick ran twice')
if (live < 1 || live > 3) throw new Error(`expected 1 to 3 ticks in 2.5 s, got ${live}`)
if (ticks.length - live < 1) throw new Error('the restart should have caught up the missed ticks')
console.log('cron example: ok')
