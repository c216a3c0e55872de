/**
 * Query plans that must not depend on fresh statistics. The batch statements (heartbeat, complete,
 * settle) join an array of ids to the jobs table; with the statistics of a table analyzed while few
 * jobs were active, the planner used to take the partial index of active jobs for the join and scan
 * the whole batch once per active job (one completion of 1,000 took 0.8 s with 1M finished rows).
 * These tests build that situation for real (a large analyzed table, then thousands of active jobs
 * the statistics don't know about) and read the plans PostgreSQL chooses, custom and generic: the
 * batch must drive lookups by id through the unique index, never through jobs_lease.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate } from '../../src/storage/postgres/index.js'
import { queriesFor } from '../../src/storage/postgres/sql.js'
import { adminPool, DATABASE_URL, freshSchema } from './helpers.js'

const schema = freshSchema('plans')
const admin = adminPool()
const client = new pg.Client({ connectionString: DATABASE_URL })
const ACTIVE = 3000
let ids: string[] = []

beforeAll(async () => {
	await migrate({ pool: admin, schema })
	await admin.query(
		`INSERT INTO "${schema}".jobs (id, name, input, status, priority, run_at, attempt, max_attempts, output,
		   created_at, updated_at, started_at, finished_at)
		 SELECT 'done-' || g, 'work', '{}', 'completed', 0, 0, 1, 1, 'null', 0, 0, 0, 0 FROM generate_series(1, 200000) g`,
	)
	await admin.query(`ANALYZE "${schema}".jobs`)
	// Active jobs the statistics don't know about (no ANALYZE after), as in a busy queue.
	const { rows } = await admin.query<{ id: string }>(
		`INSERT INTO "${schema}".jobs (id, name, input, status, priority, run_at, attempt, max_attempts,
		   lease_owner, lease_token, lease_expires_at, created_at, updated_at, started_at)
		 SELECT 'run-' || g, 'work', '{}', 'active', 0, 0, 1, 3, 'w', 't' || g, 9e15, 0, 0, 0
		 FROM generate_series(1, ${ACTIVE}) g RETURNING id`,
	)
	ids = rows.map((r) => r.id).slice(0, 1000)
	await client.connect()
}, 60_000)

afterAll(async () => {
	await client.end()
	await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
	await admin.end()
})

/** The index names a plan reads, from EXPLAIN (FORMAT JSON) of a named statement in `mode`. */
async function indexesUsed(name: string, text: string, values: unknown[], mode: string): Promise<string[]> {
	await client.query('BEGIN')
	try {
		await client.query(`SET LOCAL plan_cache_mode = ${mode}`)
		const r = await client.query({ name: `${name}-${mode}`, text: `EXPLAIN (FORMAT JSON) ${text}`, values })
		const found: string[] = []
		const walk = (node: Record<string, unknown>) => {
			if (typeof node['Index Name'] === 'string') found.push(node['Index Name'])
			for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child)
		}
		walk((r.rows[0]['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan)
		return found
	} finally {
		await client.query('ROLLBACK')
	}
}

const tokens = () => ids.map((id) => `t${id.slice(4)}`)

describe.each(['force_custom_plan', 'force_generic_plan'])('with %s', (mode) => {
	it('heartbeat looks the batch up by id', async () => {
		const q = queriesFor(schema).heartbeat
		const used = await indexesUsed('hb', q, [ids, tokens(), 9e15, 1], mode)
		expect(used).toContain('jobs_id_key')
		expect(used).not.toContain('jobs_lease')
	})

	it('complete looks the batch up by id', async () => {
		const q = queriesFor(schema).complete
		const n = ids.length
		const values = [ids, tokens(), ids.map(() => 'null'), 1, Array(n).fill(true), Array(n).fill(false)]
		const used = await indexesUsed('complete', q, values, mode)
		expect(used).toContain('jobs_id_key')
		expect(used).not.toContain('jobs_lease')
	})

	it('settle looks the batch up by id', async () => {
		const q = queriesFor(schema).settle
		const outcomes = ids.map((id, i) => ({ id, token: tokens()[i], kind: 'retry', run_at: 5, error: {} }))
		const used = await indexesUsed('settle', q, [JSON.stringify(outcomes), 1], mode)
		expect(used).toContain('jobs_id_key')
		expect(used).not.toContain('jobs_lease')
	})
})
