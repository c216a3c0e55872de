/**
 * spool's demo (`npm start`): workers process jobs on the embedded SQLite default. Some jobs
 * succeed, some fail and are retried with backoff, some fail for good and land in the dead
 * letters. A live progress line shows it happen, and the dashboard shows it at the address printed
 * first (port `PORT`, default 4300).
 *
 *   npm start                 # 300 jobs; on a terminal the dashboard stays up (and new jobs trickle in) until Ctrl-C
 *   npm start -- --jobs 2000  # more
 *   npm start -- --exit       # exit once the jobs settled, even on a terminal (--stay: stay up, even without one)
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import { type DashboardServer, serveDashboard } from '../src/dashboard/index.js'
import { createJob, createQueue, FatalError, silentLogger } from '../src/index.js'
import { sqlite } from '../src/storage/sqlite/index.js'

const args = process.argv.slice(2)
const total = Number(args[args.indexOf('--jobs') + 1]) || 300
const stayUp = (process.stdout.isTTY === true || args.includes('--stay')) && !args.includes('--exit')
const path = '.spool/demo.db'
rmSync(path, { force: true })
rmSync(`${path}-wal`, { force: true })
rmSync(`${path}-shm`, { force: true })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const resizeImage = createJob(
	{ name: 'resize-image', input: z.object({ file: z.string(), width: z.number().int().positive() }) },
	async ({ file, width }) => {
		await sleep(5 + Math.random() * 20)
		return { file: file.replace(/\.png$/, `-${width}.png`) }
	},
)

const sendEmail = createJob(
	{
		name: 'send-email',
		input: z.object({ to: z.email() }),
		retry: 3,
		backoff: { initial: '200ms', factor: 2, jitter: 0.2 },
	},
	async ({ to }, ctx) => {
		await sleep(10 + Math.random() * 30)
		// The mail server is flaky: a third of first attempts time out.
		if (ctx.attempt === 1 && Math.random() < 0.33) throw new Error(`SMTP timeout sending to ${to}`)
		await ctx.runOnce('smtp', async () => ({ to, accepted: true }))
	},
)

const chargeCard = createJob(
	{
		name: 'charge-card',
		input: z.object({ card: z.string(), cents: z.number() }),
		retry: 2,
		backoff: '300ms',
	},
	async ({ card, cents }) => {
		await sleep(15)
		if (card.endsWith('0000'))
			throw new FatalError(`card ${card} was declined (${cents} cents): not retrying`)
		if (card.endsWith('9')) throw new Error('payment gateway returned 503')
		return { receipt: `r-${card.slice(-4)}-${cents}` }
	},
)

const queue = createQueue({
	jobs: { resizeImage, sendEmail, chargeCard },
	storage: sqlite({ path }),
	concurrency: 20,
	logger: silentLogger,
	worker: { pollInterval: '200ms', maintenanceInterval: '200ms' },
})
await queue.ready

const counts = { completed: 0, retried: 0, dead: 0 }
queue.on('completed', () => counts.completed++)
queue.on('failed', (e) => {
	if (e.retryAt) counts.retried++
})
queue.on('dead', () => counts.dead++)

// The dashboard's UI is built by `npm run build`; on a fresh clone, build it once now.
const root = join(import.meta.dirname, '..')
if (!existsSync(join(root, 'dist', 'ui', 'index.html'))) {
	console.log('Building the dashboard UI (once)...')
	execFileSync('npm', ['run', 'build:ui', '--silent'], { cwd: root, stdio: 'inherit' })
}
// The dashboard, with a token for its buttons (the address carries it to the browser).
const token = randomBytes(12).toString('hex')
let dashboard: DashboardServer
try {
	dashboard = await serveDashboard({ queue, port: Number(process.env.PORT ?? 4300), token })
} catch (err) {
	// The default port is taken (another demo?): take any free one rather than fail.
	if (process.env.PORT || (err as { code?: string }).code !== 'EADDRINUSE') throw err
	dashboard = await serveDashboard({ queue, port: 0, token })
}
console.log(`spool demo: ${total} jobs on SQLite (${path}), 20 at a time`)
console.log(`Dashboard: ${dashboard.url}#token=${token}\n`)
const started = Date.now()
const items = Array.from({ length: total }, (_, i) => {
	switch (i % 3) {
		case 0:
			return { name: 'resize-image' as const, input: { file: `photo-${i}.png`, width: 300 } }
		case 1:
			return { name: 'send-email' as const, input: { to: `user${i}@example.com` } }
		default:
			return {
				name: 'charge-card' as const,
				input: {
					card: i % 50 === 2 ? '4000000000000000' : `42424242424242${i % 10}${(i * 7) % 10}`,
					cents: i * 100,
				},
			}
	}
})
await queue.enqueueMany(items)

const render = async () => {
	const s = (await queue.getStats()).total
	const line = `  completed ${s.completed} · active ${s.active} · pending ${s.pending} · retries so far ${counts.retried} · dead ${s.dead}`
	process.stdout.write(process.stdout.isTTY ? `\r${line}   ` : `${line}\n`)
	return s
}
for (;;) {
	const s = await render()
	if (s.pending === 0 && s.active === 0 && s.waiting === 0) break
	await sleep(process.stdout.isTTY ? 100 : 500)
}
const seconds = (Date.now() - started) / 1000
console.log(`\n\nAll ${total} jobs settled in ${seconds.toFixed(1)} s.`)

const dead = await queue.dead.list({ limit: 5 })
if (dead.jobs.length > 0) {
	console.log(`\nDead letters (first ${dead.jobs.length}); replay them with queue.dead.replay(id):`)
	for (const job of dead.jobs) {
		const last = job.errors[job.errors.length - 1]
		console.log(`  ${job.name} ${job.id}: ${last?.name}: ${last?.message} (after ${job.attempt} attempt(s))`)
	}
}
if (stayUp) {
	// Keep the dashboard up with a trickle of new jobs, so its chart has something to show.
	console.log(
		`\nThe dashboard stays up at ${dashboard.url}#token=${token} with new jobs trickling in. Ctrl-C stops.`,
	)
	let n = total
	const trickle = setInterval(() => {
		const batch = Array.from({ length: 3 + Math.floor(Math.random() * 6) }, () => items[n++ % items.length]!)
		void queue.enqueueMany(batch).catch(() => {})
	}, 1000)
	await new Promise<void>((resolve) => {
		process.once('SIGINT', resolve)
		process.once('SIGTERM', resolve)
	})
	clearInterval(trickle)
}
await dashboard.close()
await queue.close()
