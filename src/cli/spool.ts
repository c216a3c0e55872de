#!/usr/bin/env node
/**
 * The `spool` command: inspect and operate a queue from a terminal, run workers, serve the
 * dashboard. `spool --help` lists the commands; every one takes `--storage` (or `SPOOL_URL`).
 */
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Command, CommanderError, Option } from 'commander'
import { toApiJob } from '../dashboard/handler.js'
import { ConfigError, JobNotFoundError, SpoolError } from '../errors.js'
import { isJobDefinition, type JobDefinition } from '../job.js'
import { consoleLogger } from '../logger.js'
import { createQueue, type JobInfo, type Queue } from '../queue.js'
import { JOB_STATUSES, type JobStatus, type StatusCounts } from '../storage/contract.js'
import { parseDuration } from '../time.js'
import { clip, EXIT, progress, table } from './output.js'
import { DEFAULT_STORAGE, migrateStorage, redact, resolveStorage } from './storage.js'

interface GlobalOptions {
	storage?: string
	json?: boolean
}

const program = new Command()
program
	.name('spool')
	.description('Inspect and operate a spool queue, run its workers, serve its dashboard.')
	.addOption(
		new Option(
			'-s, --storage <address>',
			`sqlite:path, file:path or postgres://... (default ${DEFAULT_STORAGE})`,
		).env('SPOOL_URL'),
	)
	.option('--json', 'print JSON for scripts instead of tables')
	.showHelpAfterError()
	.exitOverride()
	.addHelpText(
		'after',
		`
Exit codes: 0 done, 1 failure, 2 bad usage, 3 not found, 4 storage unavailable, 130 interrupted.`,
	)

function globals(): GlobalOptions {
	return program.opts<GlobalOptions>()
}

/** Opens a producer-only queue (never runs jobs) over the chosen storage. */
async function openQueue(): Promise<Queue> {
	const storage = await makeStorage()
	const queue = createQueue({ storage, worker: false, logger: consoleLogger('warn') })
	try {
		await queue.ready
	} catch (err) {
		throw new StorageOpenError(storage.description, err)
	}
	return queue
}

/** The storage `--storage` names; failing to make it (a bad path) is a storage error. */
async function makeStorage() {
	const address = globals().storage
	try {
		return await resolveStorage(address)
	} catch (err) {
		if (err instanceof SpoolError) throw err
		throw new StorageOpenError(address ?? DEFAULT_STORAGE, err)
	}
}

class StorageOpenError extends Error {
	constructor(description: string, cause: unknown) {
		super(
			`Could not open the storage ${redact(description)}: ${(cause as Error)?.message ?? String(cause)}`,
			{
				cause,
			},
		)
	}
}

async function withQueue<T>(fn: (queue: Queue) => Promise<T>): Promise<T> {
	const queue = await openQueue()
	try {
		return await fn(queue)
	} finally {
		await queue.close()
	}
}

function out(json: unknown, human: () => string): void {
	if (globals().json) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`)
	else process.stdout.write(`${human()}\n`)
}

function parseIntOption(name: string) {
	return (value: string): number => {
		const n = Number(value)
		if (!Number.isInteger(n)) throw new ConfigError(`${name} must be a whole number, got '${value}'.`)
		return n
	}
}

function parseStatusOption(value: string): JobStatus {
	if (!(JOB_STATUSES as readonly string[]).includes(value)) {
		throw new ConfigError(`--status must be one of ${JOB_STATUSES.join(', ')}; got '${value}'.`)
	}
	return value as JobStatus
}

function countsRow(name: string, c: StatusCounts): string[] {
	return [name, ...JOB_STATUSES.map((s) => String(c[s]))]
}

function jobsTable(jobs: readonly JobInfo[]): string {
	if (jobs.length === 0) return 'No jobs.'
	return table(
		['ID', 'NAME', 'STATUS', 'ATTEMPT', 'CREATED', 'LAST ERROR'],
		jobs.map((j) => {
			const last = j.errors[j.errors.length - 1]
			return [
				j.id,
				j.name,
				j.status,
				`${j.attempt}/${j.maxAttempts}`,
				j.createdAt.toISOString().replace('T', ' ').slice(0, 19),
				last ? clip(`${last.name}: ${last.message}`, 60) : '',
			]
		}),
	)
}

// ---------------------------------------------------------------------------------------------

program
	.command('stats')
	.description('counts of jobs by state, per job name')
	.argument('[name]', 'only this job name')
	.action(async (name?: string) => {
		const stats = await withQueue((q) => q.getStats(name))
		out(stats, () =>
			table(
				['NAME', ...JOB_STATUSES.map((s) => s.toUpperCase())],
				[
					...Object.entries(stats.byName)
						.sort(([a], [b]) => a.localeCompare(b))
						.map(([n, c]) => countsRow(n, c)),
					countsRow('(all)', stats.total),
				],
			),
		)
	})

const jobs = program.command('jobs').description('list and show jobs')
jobs
	.command('list')
	.description('jobs, newest first')
	.option('--status <status>', `one of ${JOB_STATUSES.join(', ')}`, parseStatusOption)
	.option('--name <name>', 'only this job name')
	.option('--parent <id>', 'only children of this job')
	.option('--limit <n>', 'how many (1 to 1000)', parseIntOption('--limit'), 20)
	.option('--cursor <cursor>', 'the page after this cursor (printed with each page)')
	.action(
		async (o: { status?: JobStatus; name?: string; parent?: string; limit: number; cursor?: string }) => {
			const page = await withQueue((q) =>
				q.listJobs({ status: o.status, name: o.name, parentId: o.parent, limit: o.limit, cursor: o.cursor }),
			)
			out({ jobs: page.jobs.map(toApiJob), nextCursor: page.nextCursor }, () => jobsTable(page.jobs))
			if (!globals().json && page.nextCursor) process.stderr.write(`more: --cursor ${page.nextCursor}\n`)
		},
	)

jobs
	.command('show')
	.description('one job: input, output, errors, steps, children')
	.argument('<id>')
	.action(async (id: string) => {
		const detail = await withQueue(async (q) => {
			const job = await q.getJob(id)
			if (!job) throw new JobNotFoundError(id)
			const [steps, children] = await Promise.all([q.getSteps(id), q.listJobs({ parentId: id, limit: 100 })])
			return { job, steps, children: children.jobs }
		})
		const { job, steps, children } = detail
		out({ job: toApiJob(job), steps, children: children.map(toApiJob) }, () => {
			const lines = [
				`${job.name} ${job.id}: ${job.status}, attempt ${job.attempt} of ${job.maxAttempts}`,
				`  created  ${job.createdAt.toISOString()}`,
				`  run at   ${job.runAt.toISOString()}`,
				...(job.finishedAt ? [`  finished ${job.finishedAt.toISOString()}`] : []),
				...(job.parentId ? [`  parent   ${job.parentId}`] : []),
				`  input    ${JSON.stringify(job.input)}`,
				...(job.output !== undefined ? [`  output   ${JSON.stringify(job.output)}`] : []),
			]
			for (const e of job.errors) {
				lines.push(`  error (attempt ${e.attempt}): ${e.name}: ${e.message}`)
				if (e.stack)
					lines.push(
						...e.stack
							.split('\n')
							.slice(1, 4)
							.map((l) => `    ${l.trim()}`),
					)
			}
			for (const s of steps) lines.push(`  step ${s.name}: ${s.state}`)
			for (const c of children) lines.push(`  child ${c.name} ${c.id}: ${c.status}`)
			for (const l of job.logs) lines.push(`  log ${l}`)
			return lines.join('\n')
		})
	})

const dead = program.command('dead').description('dead letters: jobs that failed for good')
dead
	.command('list')
	.description('dead jobs, newest first')
	.option('--name <name>', 'only this job name')
	.option('--limit <n>', 'how many (1 to 1000)', parseIntOption('--limit'), 20)
	.option('--cursor <cursor>', 'the page after this cursor')
	.action(async (o: { name?: string; limit: number; cursor?: string }) => {
		const page = await withQueue((q) => q.dead.list({ name: o.name, limit: o.limit, cursor: o.cursor }))
		out({ jobs: page.jobs.map(toApiJob), nextCursor: page.nextCursor }, () => jobsTable(page.jobs))
		if (!globals().json && page.nextCursor) process.stderr.write(`more: --cursor ${page.nextCursor}\n`)
	})

dead
	.command('replay')
	.description('replay one dead job, or all of them (--all), pending again with attempts reset')
	.argument('[id]', 'the dead job to replay')
	.option('--all', 'replay every dead job (of --name, or of every name)')
	.option('--name <name>', 'with --all: only this job name')
	.action(async (id: string | undefined, o: { all?: boolean; name?: string }) => {
		if (!id && !o.all) throw new ConfigError('Give the id of a dead job, or --all.')
		if (id && o.all) throw new ConfigError('Give an id or --all, not both.')
		const replayed = await withQueue(async (q) => {
			if (id) {
				if (await q.dead.replay(id)) return 1
				const job = await q.getJob(id)
				throw new NotDoneError(job ? `Job ${id} is ${job.status}, not dead.` : `No job with id '${id}'.`)
			}
			const stats = await q.getStats(o.name)
			const names = Object.entries(stats.byName)
				.filter(([n, c]) => c.dead > 0 && (!o.name || n === o.name))
				.map(([n]) => n)
			const total = names.reduce((sum, n) => sum + stats.byName[n]!.dead, 0)
			const bar = progress('replaying', total)
			let done = 0
			for (const name of names) {
				done += await q.dead.replayAll(name)
				bar.update(done)
			}
			bar.done()
			return done
		})
		out({ replayed }, () => `Replayed ${replayed} dead job(s).`)
	})

program
	.command('enqueue')
	.description('enqueue a job by name with a JSON input; prints its id')
	.argument('<name>', 'the job name')
	.argument('[json]', 'the input, as JSON (default: none)')
	.option('--delay <duration>', "run no sooner than this from now, e.g. '5m'")
	.option('--priority <n>', 'lower runs first', parseIntOption('--priority'))
	.option('--id <id>', 'the job id (enqueueing an existing id returns that job)')
	.option('--max-attempts <n>', 'attempts in all', parseIntOption('--max-attempts'))
	.action(
		async (
			name: string,
			json: string | undefined,
			o: { delay?: string; priority?: number; id?: string; maxAttempts?: number },
		) => {
			let input: unknown
			if (json !== undefined) {
				try {
					input = JSON.parse(json)
				} catch (err) {
					throw new ConfigError(`The input is not valid JSON: ${(err as Error).message}`)
				}
			}
			const id = await withQueue((q) => {
				const options = { delay: o.delay, priority: o.priority, id: o.id, maxAttempts: o.maxAttempts }
				const enqueue = q.enqueue as (n: string, i?: unknown, opts?: typeof options) => Promise<string | null>
				return json === undefined ? enqueue.call(q, name) : enqueue.call(q, name, input, options)
			})
			out({ id, deduped: id === null }, () => id ?? 'Not enqueued: a job with the same dedupe key is queued.')
		},
	)

for (const action of ['pause', 'resume'] as const) {
	program
		.command(action)
		.description(
			action === 'pause'
				? 'stop claiming jobs of a name, in every process (durable)'
				: 'claim jobs of a paused name again',
		)
		.argument('<name>', 'the job name')
		.action(async (name: string) => {
			await withQueue((q) => q[action](name as never))
			out({ name, paused: action === 'pause' }, () => `${action === 'pause' ? 'Paused' : 'Resumed'} ${name}.`)
		})
}

program
	.command('migrate')
	.description("create or upgrade the storage's schema")
	.action(async () => {
		const what = await migrateStorage(globals().storage)
		out({ migrated: what }, () => `Migrated ${what}.`)
	})

program
	.command('prune')
	.description('delete finished jobs older than their retention')
	.option(
		'--older-than <duration>',
		"finished longer ago than this (default: completed and cancelled '1d', dead '30d')",
	)
	.option('--status <list>', 'which states, comma-separated', 'completed,cancelled,dead')
	.option('--name <name>', 'only this job name')
	.action(async (o: { olderThan?: string; status: string; name?: string }) => {
		const statuses = o.status.split(',').map((s) => s.trim())
		for (const s of statuses) {
			if (s !== 'completed' && s !== 'cancelled' && s !== 'dead') {
				throw new ConfigError(`--status takes completed, cancelled and dead; got '${s}'.`)
			}
		}
		const age = (s: string) =>
			o.olderThan !== undefined
				? parseDuration(o.olderThan, '--older-than')
				: s === 'dead'
					? 30 * 86_400_000
					: 86_400_000
		const deleted = await withQueue(async (q) => {
			const stats = await q.getStats(o.name)
			const total = statuses.reduce((sum, s) => sum + stats.total[s as JobStatus], 0)
			const bar = progress('pruning', total)
			let count = 0
			for (const s of statuses as ('completed' | 'cancelled' | 'dead')[]) {
				for (;;) {
					const n = await q.storage.prune({
						statuses: [s],
						before: Date.now() - age(s),
						limit: 500,
						name: o.name,
					})
					count += n
					bar.update(count)
					if (n < 500) break
				}
			}
			bar.done()
			return count
		})
		out({ deleted }, () => `Deleted ${deleted} finished job(s).`)
	})

program
	.command('dashboard')
	.description('serve the dashboard (JSON API and web UI)')
	.addOption(
		new Option('-p, --port <port>', 'port').env('PORT').default(4300).argParser(parseIntOption('--port')),
	)
	.option('--host <host>', 'address to bind (only this machine by default)', '127.0.0.1')
	.addOption(
		new Option('--token <token>', 'token that actions (replay, cancel, pause) need').env('SPOOL_TOKEN'),
	)
	.option('--metrics', 'also serve Prometheus metrics at /metrics')
	.action(async (o: { port: number; host: string; token?: string; metrics?: boolean }) => {
		const { serveDashboard } = await import('../dashboard/index.js')
		const queue = await openQueue()
		const metrics = o.metrics ? (await import('../metrics/index.js')).createMetrics({ queue }) : undefined
		const server = await serveDashboard({
			queue,
			port: o.port,
			host: o.host,
			token: o.token,
			metrics: metrics?.registry,
		})
		const shown = o.token ? `${server.url}#token=${encodeURIComponent(o.token)}` : server.url
		out({ url: server.url }, () => `spool dashboard on ${queue.storage.description}: ${shown}`)
		await untilSignal(async () => {
			await server.close()
			metrics?.close()
			await queue.close()
		})
	})

program
	.command('worker')
	.description('run the jobs a module exports until SIGTERM or SIGINT')
	.argument('<jobs file>', 'a module exporting jobs (createJob results, or a `jobs` map)')
	.option('-c, --concurrency <n>', 'jobs run at once', parseIntOption('--concurrency'), 10)
	.option('--shutdown-timeout <duration>', 'how long running jobs may finish on shutdown', '10s')
	.action(async (file: string, o: { concurrency: number; shutdownTimeout: string }) => {
		const timeout = parseDuration(o.shutdownTimeout, '--shutdown-timeout')
		const defs = await loadJobs(file)
		const storage = await makeStorage()
		const queue = createQueue({
			jobs: defs,
			storage,
			concurrency: o.concurrency,
			logger: consoleLogger('info'),
		})
		try {
			await queue.ready
		} catch (err) {
			throw new StorageOpenError(storage.description, err)
		}
		const names = Object.values(defs).map((d) => d.name)
		process.stdout.write(
			`spool worker: ${names.length} job(s) (${names.join(', ')}) on ${storage.description}, ${o.concurrency} at a time. Ctrl-C stops.\n`,
		)
		await untilSignal(async (signal) => {
			process.stdout.write(`spool worker: ${signal}: letting running jobs finish (up to ${timeout} ms)\n`)
			await queue.close({ timeout })
			process.stdout.write('spool worker: stopped\n')
		})
	})

/** Waits for SIGINT or SIGTERM, then runs `stop`; a second signal exits at once. */
function untilSignal(stop: (signal: NodeJS.Signals) => Promise<void>): Promise<void> {
	return new Promise<void>((resolveDone, reject) => {
		let stopping = false
		const on = (signal: NodeJS.Signals) => {
			if (stopping) {
				process.stderr.write(`spool: ${signal} again: exiting now\n`)
				process.exit(EXIT.interrupted)
			}
			stopping = true
			stop(signal).then(resolveDone, reject)
		}
		process.on('SIGINT', on)
		process.on('SIGTERM', on)
	})
}

/** Imports a jobs module: its `jobs` map, its default export, or every job it exports. */
async function loadJobs(file: string): Promise<Record<string, JobDefinition>> {
	const path = resolve(file)
	if (!existsSync(path)) throw new ConfigError(`No jobs file at ${path}.`)
	if (/\.[mc]?tsx?$/.test(path)) {
		try {
			const { register } = (await import('tsx/esm/api')) as { register: () => unknown }
			register()
		} catch {
			// tsx is not installed: Node may still strip the types itself.
		}
	}
	const mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>
	const found: Record<string, JobDefinition> = {}
	const add = (value: unknown) => {
		if (isJobDefinition(value)) found[value.name] = value
	}
	for (const source of [mod.jobs, mod.default]) {
		if (source && typeof source === 'object' && !isJobDefinition(source)) Object.values(source).forEach(add)
	}
	for (const value of Object.values(mod)) add(value)
	if (Object.keys(found).length === 0) {
		throw new ConfigError(
			`${file} exports no jobs: export createJob() results, or a \`jobs\` object of them.`,
		)
	}
	return found
}

class NotDoneError extends Error {}

function exitCodeOf(err: unknown): number {
	if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage
	if (err instanceof NotDoneError || err instanceof JobNotFoundError) return EXIT.notFound
	if (err instanceof StorageOpenError) return EXIT.storage
	if (err instanceof SpoolError) {
		if (err.code.startsWith('SPOOL_STORAGE')) return EXIT.storage
		if (['SPOOL_CONFIG', 'SPOOL_VALIDATION', 'SPOOL_UNKNOWN_JOB', 'SPOOL_SERIALIZATION'].includes(err.code))
			return EXIT.usage
	}
	return EXIT.failure
}

try {
	await program.parseAsync(process.argv)
} catch (err) {
	const code = exitCodeOf(err)
	if (!(err instanceof CommanderError)) {
		process.stderr.write(`spool: ${(err as Error)?.message ?? String(err)}\n`)
		if (code === EXIT.failure && process.env.SPOOL_DEBUG) process.stderr.write(`${(err as Error).stack}\n`)
	}
	process.exitCode = code
}
