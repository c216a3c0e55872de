/**
 * Migrations of the PostgreSQL storage: the numbered .sql files in sql/, applied in order inside
 * one transaction that holds a transaction-scoped advisory lock for the schema, so any number of
 * processes may migrate at once: the first applies, the others wait and find nothing to do.
 */
import pg from 'pg'
import { ConfigError, StorageForeignError } from '../../errors.js'
import { checkin, checkout } from './connection.js'
import { checkSchema, migrationsFor } from './sql.js'

/** What `migrate` takes: a connection string or a pool, and the schema (default `spool`). */
export interface MigrateOptions {
	/** Defaults to the `DATABASE_URL` environment variable when neither this nor `pool` is given. */
	readonly connectionString?: string
	readonly pool?: pg.Pool
	readonly schema?: string
}

/** The newest schema version this code knows. A database with a newer one is refused. */
export function latestVersion(schema = 'spool'): number {
	return Math.max(0, ...migrationsFor(schema).map((m) => m.version))
}

/** Applies the migrations a schema lacks, on one connection of `pool`. Returns the names applied. */
export async function migrateWith(pool: pg.Pool, schema: string): Promise<string[]> {
	const migrations = migrationsFor(schema)
	const latest = Math.max(0, ...migrations.map((m) => m.version))
	const client = await checkout(pool)
	let failed = false
	try {
		await client.query('BEGIN')
		await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`spool:migrate:${schema}`])
		await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`)
		await client.query(
			`CREATE TABLE IF NOT EXISTS "${schema}".migrations (
				version integer PRIMARY KEY,
				name text NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now())`,
		)
		const done = new Set(
			(await client.query<{ version: number }>(`SELECT version FROM "${schema}".migrations`)).rows.map(
				(r) => r.version,
			),
		)
		const newest = Math.max(0, ...done)
		if (newest > latest) {
			throw new StorageForeignError(
				`The PostgreSQL schema "${schema}" was migrated by a newer spool (version ${newest}; this one knows up to ${latest}). Upgrade spool; nothing was changed.`,
			)
		}
		const applied: string[] = []
		for (const m of migrations) {
			if (done.has(m.version)) continue
			await client.query(m.sql)
			await client.query(`INSERT INTO "${schema}".migrations (version, name) VALUES ($1, $2)`, [
				m.version,
				m.name,
			])
			applied.push(m.name)
		}
		await client.query('COMMIT')
		return applied
	} catch (err) {
		failed = true
		await client.query('ROLLBACK').catch(() => {})
		throw err
	} finally {
		checkin(client, failed)
	}
}

/**
 * Brings a database's spool schema up to date (what `spool migrate` runs). Safe to run from many
 * processes at once.
 *
 * ```ts
 * import { migrate } from 'spool/postgres'
 * const { applied } = await migrate({ connectionString: process.env.DATABASE_URL })
 * ```
 */
export async function migrate(options: MigrateOptions = {}): Promise<{ applied: string[] }> {
	const schema = checkSchema(options.schema ?? 'spool')
	if (options.pool) return { applied: await migrateWith(options.pool, schema) }
	const connectionString = options.connectionString ?? process.env.DATABASE_URL
	if (!connectionString) {
		throw new ConfigError(
			'migrate needs a connectionString or a pool (or the DATABASE_URL environment variable).',
		)
	}
	const pool = new pg.Pool({ connectionString, max: 1 })
	pool.on('error', () => {})
	try {
		return { applied: await migrateWith(pool, schema) }
	} finally {
		await pool.end()
	}
}
