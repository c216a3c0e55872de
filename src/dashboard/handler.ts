/**
 * The dashboard's request handler: the JSON API under `/api/v1` and the built UI, as one
 * `(req, res) => void` for node:http, so it mounts in Express, Hono (node adapter), Fastify or a
 * plain `http.createServer`.
 */
import { timingSafeEqual } from 'node:crypto'
import { existsSync, readFileSync, statSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join, normalize, resolve, sep } from 'node:path'
import { ConfigError, SpoolError } from '../errors.js'
import { decodeJson } from '../json.js'
import type { Logger } from '../logger.js'
import type { JobInfo, QueueEvents } from '../queue.js'
import { JOB_STATUSES, type JobStatus, type QueueStats, type StepRow } from '../storage/contract.js'
import type {
	ApiConfig,
	ApiJob,
	ApiJobDetail,
	ApiJobList,
	ApiStats,
	ApiStep,
	ApiThroughput,
} from './types.js'

/** What the dashboard needs of a queue; every `Queue` has it. */
export interface DashboardQueue {
	readonly storage: { readonly description: string }
	readonly logger: Logger
	getStats(name?: string): Promise<QueueStats>
	listJobs(options?: {
		readonly name?: string
		readonly status?: JobStatus
		readonly parentId?: string
		readonly limit?: number
		readonly cursor?: string | null
	}): Promise<{ readonly jobs: readonly JobInfo[]; readonly nextCursor: string | null }>
	getJob(id: string): Promise<JobInfo | null>
	getSteps(id: string): Promise<StepRow[]>
	cancel(id: string): Promise<{ readonly status: string }>
	readonly dead: {
		list(options?: {
			readonly name?: string
			readonly limit?: number
			readonly cursor?: string | null
		}): Promise<{ readonly jobs: readonly JobInfo[]; readonly nextCursor: string | null }>
		replay(id: string): Promise<boolean>
		replayAll(name: string): Promise<number>
	}
	on<K extends keyof QueueEvents>(event: K, listener: (payload: QueueEvents[K]) => void): () => void
	/** Stops claiming jobs of a name (when the queue supports it). */
	pause?(name: string): unknown
	/** Claims jobs of a name again. */
	resume?(name: string): unknown
	/** The paused job names. */
	listPaused?(): Promise<string[]>
}

/** Options of createDashboard. */
export interface DashboardOptions {
	readonly queue: DashboardQueue
	/**
	 * Actions that change jobs (replay, cancel, pause, resume) need this token, sent as
	 * `Authorization: Bearer <token>`. Without one, anyone who can reach the address can act, and
	 * the UI and the log say so.
	 */
	readonly token?: string
	/**
	 * The path the handler is mounted at when requests reach it with the full path (plain http,
	 * Hono, Fastify), e.g. `/spool`. Express strips its mount path itself: leave it unset there.
	 */
	readonly basePath?: string
	/** The largest request body accepted, in bytes; larger ones get 413. Default 64 KiB. */
	readonly bodyLimit?: number
	/** The folder of the built UI. Default: `dist/ui` of this package. */
	readonly uiDir?: string
	/** A Prometheus registry (prom-client) to serve at `/metrics`. */
	readonly metrics?: { readonly contentType: string; metrics(): Promise<string> }
}

/** A node:http request handler; `close()` stops its throughput sampling and event listeners. */
export interface DashboardHandler {
	(req: IncomingMessage, res: ServerResponse): void
	/** Stops the handler's timers and event listeners. */
	close(): void
}

const NO_TOKEN_WARNING =
	'No token is configured: anyone who can reach this address can replay, cancel, pause and resume jobs. Pass `token` (or SPOOL_TOKEN to `spool dashboard`).'

const CSP = [
	"default-src 'none'",
	"script-src 'self'",
	"style-src 'self'",
	"img-src 'self' data:",
	"font-src 'self'",
	"connect-src 'self'",
	"base-uri 'none'",
	"form-action 'none'",
	"frame-ancestors 'none'",
].join('; ')

const SECURITY_HEADERS: Record<string, string> = {
	'content-security-policy': CSP,
	'x-content-type-options': 'nosniff',
	'x-frame-options': 'DENY',
	'referrer-policy': 'no-referrer',
	'cross-origin-opener-policy': 'same-origin',
	'cross-origin-resource-policy': 'same-origin',
}

const MIME: Record<string, string> = {
	'.html': 'text/html; charset=utf-8',
	'.js': 'text/javascript; charset=utf-8',
	'.css': 'text/css; charset=utf-8',
	'.svg': 'image/svg+xml',
	'.png': 'image/png',
	'.ico': 'image/x-icon',
	'.json': 'application/json',
	'.woff2': 'font/woff2',
}

/** An error with an HTTP status, answered as `{ error: { code, message } }`. */
class HttpError extends Error {
	constructor(
		readonly status: number,
		readonly code: string,
		message: string,
	) {
		super(message)
	}
}

const BUCKET_MS = 5_000
const BUCKETS = 120

/**
 * Creates the dashboard's request handler.
 *
 * ```ts
 * import http from 'node:http'
 * const handler = createDashboard({ queue, token: process.env.SPOOL_TOKEN })
 * http.createServer(handler).listen(4300, '127.0.0.1')
 * ```
 */
export function createDashboard(options: DashboardOptions): DashboardHandler {
	const { queue } = options
	if (options.token !== undefined && (typeof options.token !== 'string' || options.token.length < 8)) {
		throw new ConfigError('The dashboard token must be a string of at least 8 characters.')
	}
	const basePath = normaliseBase(options.basePath)
	const bodyLimit = options.bodyLimit ?? 64 * 1024
	if (!(Number.isInteger(bodyLimit) && bodyLimit > 0)) {
		throw new ConfigError(`bodyLimit must be a whole number of bytes > 0, got ${bodyLimit}.`)
	}
	const uiDir = options.uiDir ?? findUiDir()
	const token = options.token ? Buffer.from(options.token) : null
	if (!token) queue.logger.warn({}, `spool dashboard: ${NO_TOKEN_WARNING}`)
	const throughput = new Throughput(queue)

	const api = async (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) => {
		const method = req.method ?? 'GET'
		const parts = path.split('/').filter(Boolean).map(decodeSegment)
		const route = `${method} /${parts.map((p, i) => (isParam(parts, i) ? ':' : p)).join('/')}`
		if (method === 'POST') {
			checkActionAllowed(req, token)
			await readBody(req, bodyLimit)
		}
		switch (route) {
			case 'GET /config': {
				const body: ApiConfig = {
					tokenRequired: token !== null,
					warning: token ? null : NO_TOKEN_WARNING,
					canPause: typeof queue.pause === 'function' && typeof queue.resume === 'function',
					storage: queue.storage.description,
					version: 1,
				}
				return sendJson(res, 200, body)
			}
			case 'GET /stats': {
				const stats = await queue.getStats()
				const body: ApiStats = { ...stats, paused: await pausedNames(queue) }
				return sendJson(res, 200, body)
			}
			case 'GET /stats/:': {
				// Seed 002's `/stats/:queue`: the counts of one job name.
				const name = parts[1]!
				const stats = await queue.getStats(name)
				return sendJson(res, 200, stats.byName[name] ?? stats.total)
			}
			case 'GET /throughput':
				return sendJson(res, 200, await throughput.read())
			case 'GET /jobs': {
				const id = query.get('id')
				if (id) {
					const job = await queue.getJob(id)
					const body: ApiJobList = { jobs: job ? [toApiJob(job)] : [], nextCursor: null }
					return sendJson(res, 200, body)
				}
				const page = await queue.listJobs({
					name: query.get('name') || undefined,
					status: parseStatus(query.get('status')),
					parentId: query.get('parentId') || undefined,
					limit: parseLimit(query.get('limit')),
					cursor: query.get('cursor') || null,
				})
				return sendJson(res, 200, toApiList(page))
			}
			case 'GET /jobs/:': {
				const id = parts[1]!
				const job = await queue.getJob(id)
				if (!job) throw new HttpError(404, 'SPOOL_NOT_FOUND', `No job with id '${id}'.`)
				const [steps, children] = await Promise.all([
					queue.getSteps(id),
					queue.listJobs({ parentId: id, limit: 100 }),
				])
				const body: ApiJobDetail = {
					job: toApiJob(job),
					steps: steps.map(toApiStep),
					children: children.jobs.map(toApiJob),
				}
				return sendJson(res, 200, body)
			}
			case 'POST /jobs/:/cancel': {
				const outcome = await queue.cancel(parts[1]!)
				if (outcome.status === 'not-found')
					throw new HttpError(404, 'SPOOL_NOT_FOUND', `No job with id '${parts[1]}'.`)
				return sendJson(res, outcome.status === 'cancelled' ? 200 : 409, outcome)
			}
			case 'GET /dead':
			case 'GET /dead/:': {
				const page = await queue.dead.list({
					name: parts[1] ?? (query.get('name') || undefined),
					limit: parseLimit(query.get('limit')),
					cursor: query.get('cursor') || null,
				})
				return sendJson(res, 200, toApiList(page))
			}
			case 'POST /dead/:/replay': {
				const replayed = await queue.dead.replay(parts[1]!)
				if (!replayed) {
					const job = await queue.getJob(parts[1]!)
					if (!job) throw new HttpError(404, 'SPOOL_NOT_FOUND', `No job with id '${parts[1]}'.`)
					throw new HttpError(409, 'SPOOL_NOT_DEAD', `Job '${parts[1]}' is ${job.status}, not dead.`)
				}
				return sendJson(res, 200, { replayed: true })
			}
			case 'POST /dead/:/replay-all':
				return sendJson(res, 200, { replayed: await queue.dead.replayAll(parts[1]!) })
			case 'POST /dead/replay-all': {
				const stats = await queue.getStats()
				let replayed = 0
				for (const name of Object.keys(stats.byName)) replayed += await queue.dead.replayAll(name)
				return sendJson(res, 200, { replayed })
			}
			case 'POST /names/:/pause':
			case 'POST /names/:/resume': {
				const action = parts[2] as 'pause' | 'resume'
				const fn = queue[action]
				if (typeof fn !== 'function') {
					throw new HttpError(501, 'SPOOL_NOT_SUPPORTED', `This queue cannot ${action} job names.`)
				}
				await fn.call(queue, parts[1]!)
				return sendJson(res, 200, { name: parts[1], paused: action === 'pause' })
			}
		}
		const known = ROUTES.filter((r) => r.endsWith(` ${route.slice(route.indexOf(' ') + 1)}`))
		if (known.length > 0) {
			res.setHeader('allow', known.map((r) => r.slice(0, r.indexOf(' '))).join(', '))
			throw new HttpError(405, 'SPOOL_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}.`)
		}
		throw new HttpError(404, 'SPOOL_NOT_FOUND', `No API route ${method} ${path}.`)
	}

	const handle = async (req: IncomingMessage, res: ServerResponse) => {
		for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v)
		const full = new URL(req.url ?? '/', 'http://localhost')
		let path = full.pathname
		if (basePath && (path === basePath || path.startsWith(`${basePath}/`))) path = path.slice(basePath.length)
		if (path.startsWith('/api/v1/') || path === '/api/v1') {
			try {
				await api(req, res, path.slice('/api/v1'.length), full.searchParams)
			} catch (err) {
				sendError(res, err, queue.logger)
			}
			return
		}
		if (path === '/metrics' && options.metrics && req.method === 'GET') {
			const text = await options.metrics.metrics()
			res.writeHead(200, { 'content-type': options.metrics.contentType, 'cache-control': 'no-store' })
			res.end(text)
			return
		}
		if (req.method !== 'GET' && req.method !== 'HEAD') {
			return sendError(res, new HttpError(405, 'SPOOL_METHOD_NOT_ALLOWED', 'The UI is read with GET.'))
		}
		if (path === '' || path === '/') {
			// The UI uses relative addresses: it must be served at a path ending in '/'.
			const seen = ((req as { originalUrl?: string }).originalUrl ?? req.url ?? '/').split('?')[0]!
			if (!seen.endsWith('/')) {
				res.writeHead(308, { location: `${seen}/${full.search}` })
				res.end()
				return
			}
			return serveFile(res, uiDir, 'index.html', req.method === 'HEAD')
		}
		return serveFile(res, uiDir, path.slice(1), req.method === 'HEAD')
	}

	const handler = ((req: IncomingMessage, res: ServerResponse) => {
		handle(req, res).catch((err) => sendError(res, err, queue.logger))
	}) as DashboardHandler
	handler.close = () => throughput.close()
	return handler
}

const ROUTES = [
	'GET /config',
	'GET /stats',
	'GET /stats/:',
	'GET /throughput',
	'GET /jobs',
	'GET /jobs/:',
	'POST /jobs/:/cancel',
	'GET /dead',
	'GET /dead/:',
	'POST /dead/:/replay',
	'POST /dead/:/replay-all',
	'POST /dead/replay-all',
	'POST /names/:/pause',
	'POST /names/:/resume',
]

/** Which path segments are parameters: everything but the fixed words of the routes. */
function isParam(parts: readonly string[], i: number): boolean {
	if (i === 0) return false
	const first = parts[0]
	if (first === 'dead' && i === 1 && parts[1] === 'replay-all' && parts.length === 2) return false
	if (i === 1) return true
	return i >= 3
}

function decodeSegment(s: string): string {
	try {
		return decodeURIComponent(s)
	} catch {
		throw new HttpError(400, 'SPOOL_BAD_REQUEST', `The path segment '${s}' is not valid URI encoding.`)
	}
}

function normaliseBase(base: string | undefined): string {
	if (!base || base === '/') return ''
	if (!base.startsWith('/')) throw new ConfigError(`basePath must start with '/', got '${base}'.`)
	return base.replace(/\/+$/, '')
}

/** Refuses an action without the token (when one is set) or sent cross-site. */
function checkActionAllowed(req: IncomingMessage, token: Buffer | null): void {
	// A JSON content type cannot be sent cross-site without a CORS preflight, which this handler
	// never approves: a page on another site cannot make a browser act here.
	const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
	if (type !== 'application/json') {
		throw new HttpError(415, 'SPOOL_UNSUPPORTED_MEDIA_TYPE', 'Actions must be sent as application/json.')
	}
	const origin = req.headers.origin
	if (origin && origin !== 'null') {
		const host = req.headers.host
		let originHost: string | null = null
		try {
			originHost = new URL(origin).host
		} catch {}
		if (!host || originHost !== host) {
			throw new HttpError(403, 'SPOOL_FORBIDDEN', `Actions from origin ${origin} are refused.`)
		}
	}
	if (!token) return
	const auth = req.headers.authorization ?? ''
	const given = Buffer.from(auth.startsWith('Bearer ') ? auth.slice(7).trim() : '')
	if (given.length !== token.length || !timingSafeEqual(given, token)) {
		throw new HttpError(
			401,
			'SPOOL_UNAUTHORIZED',
			'This action needs the dashboard token: send Authorization: Bearer <token>.',
		)
	}
}

/** Reads (and bounds) a request body; returns its parsed JSON or undefined when empty. */
async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
	const pre = (req as { body?: unknown }).body
	if (pre !== undefined) return pre // parsed already by the host framework
	const length = Number(req.headers['content-length'] ?? 0)
	if (length > limit) {
		req.resume()
		throw new HttpError(413, 'SPOOL_PAYLOAD_TOO_LARGE', `Request bodies are limited to ${limit} bytes.`)
	}
	const chunks: Buffer[] = []
	let size = 0
	for await (const chunk of req as AsyncIterable<Buffer>) {
		size += chunk.length
		if (size > limit) {
			req.resume()
			throw new HttpError(413, 'SPOOL_PAYLOAD_TOO_LARGE', `Request bodies are limited to ${limit} bytes.`)
		}
		chunks.push(chunk)
	}
	if (size === 0) return undefined
	try {
		return JSON.parse(Buffer.concat(chunks).toString('utf8'))
	} catch {
		throw new HttpError(400, 'SPOOL_BAD_REQUEST', 'The request body is not valid JSON.')
	}
}

function parseStatus(value: string | null): JobStatus | undefined {
	if (!value) return undefined
	if (!(JOB_STATUSES as readonly string[]).includes(value)) {
		throw new HttpError(
			400,
			'SPOOL_BAD_REQUEST',
			`status must be one of ${JOB_STATUSES.join(', ')}; got '${value}'.`,
		)
	}
	return value as JobStatus
}

function parseLimit(value: string | null): number {
	if (!value) return 50
	const n = Number(value)
	if (!(Number.isInteger(n) && n >= 1 && n <= 1000)) {
		throw new HttpError(
			400,
			'SPOOL_BAD_REQUEST',
			`limit must be a whole number from 1 to 1000; got '${value}'.`,
		)
	}
	return n
}

async function pausedNames(queue: DashboardQueue): Promise<string[]> {
	return typeof queue.listPaused === 'function' ? queue.listPaused() : []
}

function iso(d: Date | null): string | null {
	return d === null ? null : d.toISOString()
}

/** A job for the API: dates as ISO strings. */
export function toApiJob(job: JobInfo): ApiJob {
	return {
		...job,
		output: job.output === undefined ? null : job.output,
		runAt: job.runAt.toISOString(),
		createdAt: job.createdAt.toISOString(),
		updatedAt: job.updatedAt.toISOString(),
		startedAt: iso(job.startedAt),
		finishedAt: iso(job.finishedAt),
	}
}

function toApiList(page: {
	readonly jobs: readonly JobInfo[]
	readonly nextCursor: string | null
}): ApiJobList {
	return { jobs: page.jobs.map(toApiJob), nextCursor: page.nextCursor }
}

function toApiStep(step: StepRow): ApiStep {
	return {
		stepId: step.stepId,
		name: step.name,
		state: step.state,
		output: step.output === null ? null : decodeJson(step.output),
		error: step.error,
		createdAt: new Date(step.createdAt).toISOString(),
		updatedAt: new Date(step.updatedAt).toISOString(),
	}
}

/** JSON with `<`, `>` and `&` escaped, so a body can never be read as markup. */
function sendJson(res: ServerResponse, status: number, body: unknown): void {
	const text = JSON.stringify(body).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')
	res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
	res.end(text)
}

function sendError(res: ServerResponse, err: unknown, logger?: Logger): void {
	let status = 500
	let code = 'SPOOL_INTERNAL'
	let message = 'The dashboard failed to answer; see the server log.'
	if (err instanceof HttpError) {
		status = err.status
		code = err.code
		message = err.message
	} else if (err instanceof SpoolError) {
		status = err.code === 'SPOOL_NOT_FOUND' ? 404 : err.code === 'SPOOL_STORAGE_UNAVAILABLE' ? 503 : 400
		code = err.code
		message = err.message
	} else {
		logger?.error({ err }, 'spool dashboard: a request failed')
	}
	if (res.headersSent) {
		res.destroy()
		return
	}
	sendJson(res, status, { error: { code, message } })
}

/** Finds the built UI: `dist/ui` next to the compiled code, or of the package when run from source. */
function findUiDir(): string {
	const here = import.meta.dirname
	for (const dir of [join(here, '..', 'ui'), join(here, '..', '..', 'dist', 'ui')]) {
		if (existsSync(join(dir, 'index.html'))) return dir
	}
	return join(here, '..', 'ui')
}

const fileCache = new Map<string, Buffer>()

function serveFile(res: ServerResponse, root: string, rel: string, head: boolean): void {
	const base = resolve(root)
	const file = resolve(base, normalize(rel))
	if (file !== base && !file.startsWith(base + sep)) {
		sendError(res, new HttpError(404, 'SPOOL_NOT_FOUND', 'Not found.'))
		return
	}
	let body = fileCache.get(file)
	if (!body) {
		if (!existsSync(file) || !statSync(file).isFile()) {
			if (rel === 'index.html') {
				res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' })
				res.end(`The dashboard UI is not built (looked in ${base}). Run \`npm run build:ui\`.\n`)
				return
			}
			sendError(res, new HttpError(404, 'SPOOL_NOT_FOUND', `No file ${rel}.`))
			return
		}
		body = readFileSync(file)
		fileCache.set(file, body)
	}
	const hashed = rel.startsWith('assets/')
	res.writeHead(200, {
		'content-type': MIME[extname(file)] ?? 'application/octet-stream',
		'content-length': body.length,
		'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
	})
	res.end(head ? undefined : body)
}

/**
 * Jobs finished over time, in 5 s buckets over the last 10 minutes. Counted from the queue's
 * events when it runs jobs in this process; otherwise sampled from the storage's counts.
 */
class Throughput {
	private readonly buckets = new Map<number, { completed: number; failed: number }>()
	private sawEvents = false
	private readonly off: (() => void)[] = []
	private last: { completed: number; dead: number } | null = null
	private timer: ReturnType<typeof setInterval> | null = null
	private lastRead = 0

	constructor(private readonly queue: DashboardQueue) {
		this.off.push(
			queue.on('completed', () => this.count('completed')),
			queue.on('failed', () => this.count('failed')),
		)
	}

	private bucket(t: number) {
		const key = Math.floor(t / BUCKET_MS) * BUCKET_MS
		let b = this.buckets.get(key)
		if (!b) {
			b = { completed: 0, failed: 0 }
			this.buckets.set(key, b)
			const oldest = key - BUCKETS * BUCKET_MS
			for (const k of this.buckets.keys()) if (k <= oldest) this.buckets.delete(k)
		}
		return b
	}

	private count(kind: 'completed' | 'failed') {
		this.sawEvents = true
		this.bucket(Date.now())[kind]++
	}

	private async sample() {
		if (this.sawEvents) return
		if (Date.now() - this.lastRead > 60_000) {
			// Nobody is looking: stop sampling until the next read.
			if (this.timer) clearInterval(this.timer)
			this.timer = null
			this.last = null
			return
		}
		const { total } = await this.queue.getStats()
		if (this.last) {
			const b = this.bucket(Date.now())
			b.completed += Math.max(0, total.completed - this.last.completed)
			b.failed += Math.max(0, total.dead - this.last.dead)
		}
		this.last = { completed: total.completed, dead: total.dead }
	}

	async read(): Promise<ApiThroughput> {
		this.lastRead = Date.now()
		if (!this.sawEvents && !this.timer) {
			await this.sample()
			this.timer = setInterval(() => void this.sample().catch(() => {}), 1000)
			this.timer.unref()
		}
		const now = Math.floor(Date.now() / BUCKET_MS) * BUCKET_MS
		const points: ApiThroughput['points'][number][] = []
		for (let t = now - (BUCKETS - 1) * BUCKET_MS; t <= now; t += BUCKET_MS) {
			const b = this.buckets.get(t)
			points.push({ t, completed: b?.completed ?? 0, failed: b?.failed ?? 0 })
		}
		return { bucketMs: BUCKET_MS, points }
	}

	close() {
		for (const f of this.off) f()
		if (this.timer) clearInterval(this.timer)
		this.timer = null
	}
}
