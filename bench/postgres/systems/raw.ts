/**
 * The raw-SQL baseline: the ceiling a queue on this server can reach. The same table shape as
 * spool's jobs table; claims of up to 1,000 with FOR UPDATE SKIP LOCKED in one statement, the
 * batch completed in one statement (fenced on each row's lease token), on two connections in a
 * loop. Enqueue is one INSERT (bulk: from arrays) plus NOTIFY in the same statement.
 */
import pg from 'pg'
import { createIdGenerator } from '../../../src/id.js'
import {
	type Consumer,
	databaseUrl,
	JOB_NAME,
	type Payload,
	type Producer,
	resetDatabase,
	type System,
} from '../common.js'

const DB = 'bench_raw'
const CLAIM_BATCH = 1000
const CONNECTIONS = 2
const CHANNEL = 'raw_jobs'

/** The table: spool's jobs table shape (columns, types, claim index). */
export const RAW_DDL = `
CREATE TABLE jobs (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL UNIQUE,
  name text NOT NULL,
  input text NOT NULL,
  status text NOT NULL,
  priority integer NOT NULL,
  run_at bigint NOT NULL,
  attempt integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL,
  lease_owner text,
  lease_token text,
  lease_expires_at bigint,
  dedupe_key text,
  dedupe_scope text,
  idempotency_key text,
  output text,
  errors text NOT NULL DEFAULT '[]',
  logs text NOT NULL DEFAULT '[]',
  parent_id text,
  backoff text,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  started_at bigint,
  finished_at bigint
);
CREATE INDEX jobs_claim ON jobs (priority, run_at, seq) WHERE status = 'pending';
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'active';
CREATE INDEX jobs_finished ON jobs (status, finished_at) WHERE finished_at IS NOT NULL;
`

const INSERT_MANY = `
WITH ins AS (
  INSERT INTO jobs (id, name, input, status, priority, run_at, max_attempts, created_at, updated_at)
  SELECT u.id, $2, u.input, 'pending', 0, $3, 1, $3, $3 FROM unnest($1::text[], $4::text[]) AS u(id, input)
  RETURNING 1
) SELECT pg_notify('${CHANNEL}', '') FROM (SELECT count(*) FROM ins) c`

const INSERT_ONE = `
WITH ins AS (
  INSERT INTO jobs (id, name, input, status, priority, run_at, max_attempts, created_at, updated_at)
  VALUES ($1, $2, $3, 'pending', 0, $4, 1, $4, $4) RETURNING 1
) SELECT pg_notify('${CHANNEL}', '') FROM ins`

const CLAIM = `
UPDATE jobs j SET status = 'active', attempt = j.attempt + 1, lease_owner = $1,
  lease_token = gen_random_uuid()::text, lease_expires_at = $2 + 30000, started_at = $2, updated_at = $2
FROM (
  SELECT seq FROM jobs WHERE status = 'pending' AND run_at <= $2 AND name = ANY($4::text[])
  ORDER BY priority, run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED
) c
WHERE j.seq = c.seq
RETURNING j.id, j.input, j.lease_token`

const COMPLETE = `
UPDATE jobs j SET status = 'completed', output = 'null', lease_owner = NULL, lease_token = NULL,
  lease_expires_at = NULL, finished_at = $3, updated_at = $3
FROM unnest($1::text[], $2::text[]) AS u(id, token)
WHERE j.id = u.id AND j.status = 'active' AND j.lease_token = u.token`

const FILL_FINISHED = `
INSERT INTO jobs (id, name, input, status, priority, run_at, attempt, max_attempts, output,
  created_at, updated_at, started_at, finished_at)
SELECT 'finished-' || g, $1, '{"t":0,"i":0}', 'completed', 0, $2, 1, 1, 'null', $2, $2, $2, $2
FROM generate_series(1, $3::int) g`

/** The raw baseline, on database `bench_raw`. */
export const raw: System = {
	key: 'raw',
	label: 'raw SQL (SKIP LOCKED x1000, batch complete, 2 conns)',
	async reset() {
		await resetDatabase(DB)
		const client = new pg.Client({ connectionString: databaseUrl(DB) })
		await client.connect()
		await client.query(RAW_DDL)
		await client.end()
	},
	async fillFinished(count) {
		const client = new pg.Client({ connectionString: databaseUrl(DB) })
		await client.connect()
		try {
			await client.query(FILL_FINISHED, [JOB_NAME, Date.now() - 3_600_000, count])
			await client.query('VACUUM ANALYZE jobs')
		} finally {
			await client.end()
		}
	},
	async producer(): Promise<Producer> {
		const client = new pg.Client({ connectionString: databaseUrl(DB) })
		await client.connect()
		const nextId = createIdGenerator()
		return {
			async enqueueMany(payloads) {
				const ids = payloads.map(() => nextId())
				const inputs = payloads.map((p) => JSON.stringify(p))
				await client.query(INSERT_MANY, [ids, JOB_NAME, Date.now(), inputs])
			},
			async enqueue(payload) {
				await client.query(INSERT_ONE, [nextId(), JOB_NAME, JSON.stringify(payload), Date.now()])
			},
			async close() {
				await client.end()
			},
		}
	},
	async consumer({ onJob }): Promise<Consumer> {
		const listener = new pg.Client({ connectionString: databaseUrl(DB) })
		await listener.connect()
		let wakeAll: (() => void)[] = []
		listener.on('notification', () => {
			const list = wakeAll
			wakeAll = []
			for (const wake of list) wake()
		})
		await listener.query(`LISTEN ${CHANNEL}`)
		let stopped = false
		const owner = `raw-${process.pid}`
		const loop = async (client: pg.Client) => {
			while (!stopped) {
				const now = Date.now()
				const { rows } = await client.query<{ id: string; input: string; lease_token: string }>(CLAIM, [
					owner,
					now,
					CLAIM_BATCH,
					[JOB_NAME],
				])
				if (rows.length === 0) {
					await new Promise<void>((resolve) => {
						const timer = setTimeout(resolve, 1000)
						wakeAll.push(() => {
							clearTimeout(timer)
							resolve()
						})
					})
					continue
				}
				for (const row of rows) onJob(JSON.parse(row.input) as Payload)
				await client.query(COMPLETE, [rows.map((r) => r.id), rows.map((r) => r.lease_token), Date.now()])
			}
		}
		const clients: pg.Client[] = []
		for (let i = 0; i < CONNECTIONS; i++) {
			const client = new pg.Client({ connectionString: databaseUrl(DB) })
			await client.connect()
			clients.push(client)
		}
		const loops = clients.map((c) => loop(c))
		return {
			async close() {
				stopped = true
				const list = wakeAll
				wakeAll = []
				for (const wake of list) wake()
				await Promise.all(loops)
				await Promise.all([...clients, listener].map((c) => c.end()))
			},
		}
	},
}
