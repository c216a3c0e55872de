/**
 * The raw-SQL baseline: the ceiling a queue on this server can reach. spool's own table (its
 * migrations run on database `bench_raw`: same columns, indexes and NOTIFY trigger); claims of
 * up to 1,000 with FOR UPDATE SKIP LOCKED in one statement, the batch completed in one statement
 * (fenced on the claim's lease token), on two connections in a loop, woken by LISTEN. Enqueue is
 * one INSERT (bulk: from arrays) on a pool of 10 connections; spool's statement trigger sends the
 * NOTIFY.
 */
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { createIdGenerator } from '../../../src/id.js'
import { migrate } from '../../../src/storage/postgres/index.js'
import { channelOf } from '../../../src/storage/postgres/sql.js'
import {
	type Consumer,
	databaseUrl,
	fillFinished,
	JOB_NAME,
	type Payload,
	type Producer,
	resetDatabase,
	type System,
} from '../common.js'

const DB = 'bench_raw'
const CLAIM_BATCH = 1000
const CONNECTIONS = 2
const SCHEMA = 'spool'
const CHANNEL = channelOf(SCHEMA)

const INSERT_MANY = `
INSERT INTO spool.jobs (id, name, input, status, priority, run_at, max_attempts, created_at, updated_at)
SELECT u.id, $2, u.input, 'pending', 0, $3, 1, $3, $3 FROM unnest($1::text[], $4::text[]) AS u(id, input)`

const INSERT_ONE = `
INSERT INTO spool.jobs (id, name, input, status, priority, run_at, max_attempts, created_at, updated_at)
VALUES ($1, $2, $3, 'pending', 0, $4, 1, $4, $4)`

const CLAIM = `
UPDATE spool.jobs j SET status = 'active', attempt = j.attempt + 1, lease_owner = $1,
  lease_token = $5, lease_expires_at = $2 + 30000, started_at = $2, updated_at = $2
FROM (
  SELECT seq FROM spool.jobs WHERE status = 'pending' AND run_at <= $2 AND name = ANY($4::text[])
  ORDER BY priority, run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED
) c
WHERE j.seq = c.seq
RETURNING j.id, j.input`

const COMPLETE = `
UPDATE spool.jobs j SET status = 'completed', output = 'null', lease_owner = NULL, lease_token = NULL,
  lease_expires_at = NULL, finished_at = $3, updated_at = $3
WHERE j.id = ANY($1::text[]) AND j.status = 'active' AND j.lease_token = $2`

/** The raw baseline, on database `bench_raw`. */
export const raw: System = {
	key: 'raw',
	label: 'raw SQL (SKIP LOCKED x1000, batch complete, 2 conns)',
	async reset() {
		await resetDatabase(DB)
		await migrate({ connectionString: databaseUrl(DB), schema: SCHEMA })
	},
	async fillFinished(count) {
		await fillFinished(databaseUrl(DB), SCHEMA, count)
	},
	async producer(): Promise<Producer> {
		// A pool of 10: concurrent callers' INSERTs run on as many connections at once, and the server
		// flushes their commits together (its own group commit); a lone caller uses one connection.
		const client = new pg.Pool({ connectionString: databaseUrl(DB), max: 10 })
		// An idle connection dropped (the next measure recreating the database) must not crash the run.
		client.on('error', () => {})
		await client.query('SELECT 1')
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
				const token = randomUUID()
				const { rows } = await client.query<{ id: string; input: string }>(CLAIM, [
					owner,
					now,
					CLAIM_BATCH,
					[JOB_NAME],
					token,
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
				await client.query(COMPLETE, [rows.map((r) => r.id), token, Date.now()])
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
