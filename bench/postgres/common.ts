/**
 * Shared pieces of the PostgreSQL benchmark: where the servers are, how a system's database is
 * cleaned, the clock used across processes, and percentiles.
 */
import pg from 'pg'

/** The server every PostgreSQL system runs on; each system gets its own database on it. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** The Redis server BullMQ's default backend runs on. */
export const REDIS = { host: '127.0.0.1', port: 6379 }

/**
 * `BENCH_DB_SUFFIX=_me` appends `_me` to every database name (and BullMQ's Redis prefix), so two
 * benchmark runs on one server at once (several sessions on one machine) do not drop each other's
 * databases mid-run.
 */
export const DB_SUFFIX = process.env.BENCH_DB_SUFFIX ?? ''
if (!/^[a-z0-9_]*$/.test(DB_SUFFIX)) throw new Error(`BENCH_DB_SUFFIX must be [a-z0-9_]*, got ${DB_SUFFIX}`)

/** The connection string of database `name` (plus BENCH_DB_SUFFIX) on the benchmark's server. */
export function databaseUrl(name: string): string {
	const url = new URL(DATABASE_URL)
	url.pathname = `/${name}${DB_SUFFIX}`
	return url.toString()
}

/** Drops and recreates database `name` (closing anyone still connected), so a run starts empty. */
export async function resetDatabase(base: string): Promise<void> {
	const name = `${base}${DB_SUFFIX}`
	if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`)
	const admin = new URL(DATABASE_URL)
	admin.pathname = '/postgres'
	const client = new pg.Client({ connectionString: admin.toString() })
	await client.connect()
	try {
		await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
		await client.query(`CREATE DATABASE ${name}`)
	} finally {
		await client.end()
	}
}

/**
 * Wall-clock time in milliseconds with sub-millisecond resolution, comparable between processes
 * on one machine (both read the same system clock): enqueue-to-start latency is measured with it.
 */
export function wallNow(): number {
	return performance.timeOrigin + performance.now()
}

/** The q-th percentile (0..100) of `values`, nearest-rank. */
export function percentile(values: readonly number[], q: number): number {
	if (values.length === 0) return Number.NaN
	const sorted = [...values].sort((a, b) => a - b)
	const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1))
	return sorted[rank]!
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
	return new Promise((resolve) => setTimeout(resolve, ms))
}

/** The payload every benchmark job carries: when it was enqueued (wallNow), and whether it counts. */
export interface Payload {
	readonly t: number
	/** Its place in the batch, to check that every job ran exactly once. */
	readonly i: number
	readonly warm?: boolean
}

/** Enqueues jobs (the producer side of a system). */
export interface Producer {
	/** Enqueues all of them in as few round trips as the system allows (one where it can). */
	enqueueMany(payloads: readonly Payload[]): Promise<void>
	/** Enqueues one job and resolves when it is stored. */
	enqueue(payload: Payload): Promise<void>
	close(): Promise<void>
}

/** Runs no-op jobs (the worker side of a system), calling `onJob` at the start of each. */
export interface Consumer {
	close(): Promise<void>
}

/** One system under test. */
export interface System {
	/** Short key used on the command line and in the JSON. */
	readonly key: string
	/** Human name with version and settings, for the table. */
	readonly label: string
	/** Empties the system's database (or keys) and migrates it. */
	reset(): Promise<void>
	producer(): Promise<Producer>
	consumer(options: {
		readonly concurrency: number
		readonly onJob: (payload: Payload) => void
	}): Promise<Consumer>
	/**
	 * Inserts `count` finished (completed) jobs straight into the system's table, to show whether
	 * claims slow down as finished rows pile up. Only for systems that keep finished rows.
	 */
	fillFinished?(count: number): Promise<void>
}

/** The queue (or task) name every system uses. */
export const JOB_NAME = 'bench_noop'

/**
 * Inserts `count` completed jobs into spool's jobs table (schema `schema`) in one statement, then
 * VACUUM ANALYZE: finished rows as a long-running spool deployment keeps them before pruning.
 */
export async function fillFinished(connectionString: string, schema: string, count: number): Promise<void> {
	const client = new pg.Client({ connectionString })
	await client.connect()
	try {
		const at = Date.now() - 3_600_000
		await client.query(
			`INSERT INTO "${schema}".jobs (id, name, input, status, priority, run_at, attempt, max_attempts, output,
			   created_at, updated_at, started_at, finished_at)
			 SELECT 'finished-' || g, $1, '{"t":0,"i":0}', 'completed', 0, $2, 1, 1, 'null', $2, $2, $2, $2
			 FROM generate_series(1, $3::int) g`,
			[JOB_NAME, at, count],
		)
		await client.query(`VACUUM ANALYZE "${schema}".jobs`)
	} finally {
		await client.end()
	}
}
