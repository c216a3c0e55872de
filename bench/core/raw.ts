/**
 * The baseline: a raw better-sqlite3 loop running spool's own insert, claim and complete statements
 * (src/storage/sqlite/statements.ts) on spool's schema, in WAL mode with synchronous=FULL, with
 * nothing around them: no worker, no promises, no handler. It is what the storage could do if the
 * rest of spool cost nothing, so spool's numbers are reported as ratios to it.
 */
import Database from 'better-sqlite3'
import { createIdGenerator, createLeaseToken } from '../../src/id.js'
import { SQL } from '../../src/storage/sqlite/statements.js'
import { SqliteStorage } from '../../src/storage/sqlite/storage.js'
import { rate } from './util.js'

/** A spool schema in a fresh file, opened raw. */
async function openRaw(path: string, synchronous: 'FULL' | 'NORMAL' | 'OFF'): Promise<Database.Database> {
	const storage = new SqliteStorage({ path })
	await storage.open()
	await storage.close()
	const db = new Database(path)
	db.pragma('journal_mode = WAL')
	db.pragma(`synchronous = ${synchronous}`)
	return db
}

function row(id: string, now: number) {
	return {
		id,
		name: 'noop',
		input: '{"i":1}',
		priority: 0,
		run_at: now,
		max_attempts: 4,
		parent_id: null,
		backoff: null,
		now,
	}
}

/** Inserts `jobs` jobs, one transaction each (one fsync each). */
export async function rawEnqueueOne(path: string, jobs: number): Promise<number> {
	const db = await openRaw(path, 'FULL')
	const insert = db.prepare(SQL.insertPlain)
	const nextId = createIdGenerator()
	const one = db.transaction((id: string) => insert.run(row(id, Date.now())))
	const t0 = performance.now()
	for (let i = 0; i < jobs; i++) one.immediate(nextId())
	const ms = performance.now() - t0
	db.close()
	return rate(jobs, ms)
}

/** Inserts `jobs` jobs, `batch` per transaction. */
export async function rawEnqueueBulk(path: string, jobs: number, batch: number): Promise<number> {
	const db = await openRaw(path, 'FULL')
	const insert = db.prepare(SQL.insertPlain)
	const nextId = createIdGenerator()
	const many = db.transaction((ids: string[]) => {
		const now = Date.now()
		for (const id of ids) insert.run(row(id, now))
	})
	const t0 = performance.now()
	for (let done = 0; done < jobs; done += batch) {
		const ids: string[] = []
		for (let i = 0; i < Math.min(batch, jobs - done); i++) ids.push(nextId())
		many.immediate(ids)
	}
	const ms = performance.now() - t0
	db.close()
	return rate(jobs, ms)
}

/**
 * Processes `jobs` pending jobs `concurrency` at a time, as spool's worker does with
 * `settleAndClaim` at best: one transaction (one commit, one fsync) completes the last batch and
 * claims the next (spool's wake-up of due sleepers, then its one-statement claim), repeat.
 */
export async function rawProcess(
	path: string,
	jobs: number,
	concurrency: number,
	synchronous: 'FULL' | 'NORMAL' | 'OFF' = 'FULL',
): Promise<number> {
	const db = await openRaw(path, synchronous)
	const insert = db.prepare(SQL.insertPlain)
	const nextId = createIdGenerator()
	const now0 = Date.now()
	db.transaction(() => {
		for (let i = 0; i < jobs; i++) insert.run(row(nextId(), now0))
	}).immediate()
	const wake = db.prepare(SQL.wakeDueNames)
	const claim = db.prepare(SQL.claimFast)
	const complete = db.prepare(SQL.complete)
	const names = JSON.stringify(['noop'])
	type Claimed = { id: string; lease_token: string }
	const completeAndClaim = db.transaction((done: Claimed[], now: number) => {
		for (const r of done) complete.get({ id: r.id, token: r.lease_token, output: 'null', now })
		wake.run({ names, now })
		return claim.all({
			name: 'noop',
			owner: 'raw',
			token: createLeaseToken(),
			expires: now + 30_000,
			now,
			limit: concurrency,
		}) as Claimed[]
	})
	const t0 = performance.now()
	let done = 0
	let rows: Claimed[] = []
	for (;;) {
		rows = completeAndClaim.immediate(rows, Date.now())
		if (rows.length === 0) break
		done += rows.length
	}
	const ms = performance.now() - t0
	db.close()
	if (done !== jobs) throw new Error(`raw loop processed ${done} of ${jobs}`)
	return rate(jobs, ms)
}
