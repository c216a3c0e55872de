import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { StorageCorruptError, StorageForeignError } from '../../src/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/storage/sqlite/schema.js'

let dir: string
beforeEach(() => {
	dir = mkdtempSync(join(tmpdir(), 'spool-open-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function schemaOf(path: string): string {
	const db = new Database(path, { readonly: true })
	const rows = db
		.prepare(
			"SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type DESC, name",
		)
		.all() as { sql: string }[]
	db.close()
	return `${rows.map((r) => `${r.sql.replace(/\s+/g, ' ').trim()};`).join('\n')}\n`
}

it('matches the committed schema snapshot', async () => {
	const path = join(dir, 'a.db')
	const s = sqlite({ path })
	await s.open()
	await s.close()
	const snapshot = readFileSync(join(import.meta.dirname, 'schema.snapshot.sql'), 'utf8')
	if (process.env.UPDATE_SNAPSHOT)
		writeFileSync(join(import.meta.dirname, 'schema.snapshot.sql'), schemaOf(path))
	expect(schemaOf(path)).toBe(snapshot)
})

it('refuses a file that is not SQLite, and leaves it untouched', async () => {
	const path = join(dir, 'photo.db')
	const bytes = Buffer.from('\x89PNG\r\n\x1a\n not a database at all, just some bytes')
	writeFileSync(path, bytes)
	const err = await sqlite({ path })
		.open()
		.catch((e: unknown) => e)
	expect(err).toBeInstanceOf(StorageCorruptError)
	expect((err as Error).message).toMatch(/not a SQLite database/)
	expect(readFileSync(path)).toEqual(bytes)
})

it('refuses a SQLite file whose pages are damaged, and leaves it untouched', async () => {
	const path = join(dir, 'damaged.db')
	const db = new Database(path)
	db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)')
	db.close()
	const bytes = readFileSync(path)
	// Keep the header, scribble over the schema page.
	bytes.fill(0xab, 100, 600)
	writeFileSync(path, bytes)
	const err = await sqlite({ path })
		.open()
		.catch((e: unknown) => e)
	expect(err).toBeInstanceOf(StorageCorruptError)
	expect(readFileSync(path)).toEqual(bytes)
})

it("refuses another app's database unless told to share it", async () => {
	const path = join(dir, 'app.db')
	const db = new Database(path)
	db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)')
	db.close()
	const before = readFileSync(path)
	const err = await sqlite({ path })
		.open()
		.catch((e: unknown) => e)
	expect(err).toBeInstanceOf(StorageForeignError)
	expect((err as Error).message).toMatch(/users/)
	expect(readFileSync(path)).toEqual(before)
	const shared = sqlite({ path, allowExistingTables: true })
	await shared.open()
	await shared.close()
})

it('refuses a file written by a newer spool', async () => {
	const path = join(dir, 'new.db')
	const s = sqlite({ path })
	await s.open()
	await s.close()
	const db = new Database(path)
	db.prepare("UPDATE spool_meta SET value = ? WHERE key = 'schema_version'").run(String(SCHEMA_VERSION + 1))
	db.close()
	await expect(sqlite({ path }).open()).rejects.toThrow(/newer spool/)
})

it('opens the same file from two storages at once, migrating once', async () => {
	const path = join(dir, 'shared.db')
	const a = sqlite({ path })
	const b = sqlite({ path })
	await Promise.all([a.open(), b.open()])
	await a.close()
	await b.close()
	expect(schemaOf(path)).toContain('spool_jobs')
})

it('upgrades a file of schema 3: its pending jobs stay claimable through the per-name claim index', async () => {
	const path = join(dir, 'v3.db')
	const db = new Database(path)
	db.exec('CREATE TABLE spool_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
	for (const sql of MIGRATIONS.slice(0, 3)) db.exec(sql)
	db.prepare("INSERT INTO spool_meta (key, value) VALUES ('schema_version', '3')").run()
	db.prepare(
		`INSERT INTO spool_jobs (id, name, input, status, priority, run_at, max_attempts, created_at, updated_at)
		VALUES ('old', 'work', 'null', 'pending', 0, 0, 3, 0, 0)`,
	).run()
	db.close()
	const s = sqlite({ path })
	await s.open()
	const claimed = await s.claim({ names: ['work', 'other'], owner: 'w', limit: 5, leaseMs: 1000, now: 10 })
	expect(claimed.map((j) => j.id)).toEqual(['old'])
	await s.close()
	expect(schemaOf(path)).toContain('spool_jobs_claim_name')
	expect(schemaOf(path)).not.toContain('spool_jobs_claim ON')
})
