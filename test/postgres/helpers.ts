/** Shared helpers of the PostgreSQL tests: the server's URL, an admin pool, a fresh schema per test. */
import pg from 'pg'

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

let n = 0

/** A schema name unique to this process and call. */
export function freshSchema(prefix: string): string {
	return `spool_${prefix}_${process.pid}_${n++}`
}

/** A small pool for the test's own queries. */
export function adminPool(): pg.Pool {
	const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 3 })
	pool.on('error', () => {})
	return pool
}

/** The schema as text (columns, constraints, indexes, functions, triggers), with its name as {{schema}}. */
export async function describeSchema(pool: pg.Pool, schema: string): Promise<string> {
	const out: string[] = []
	const cols = await pool.query(
		`SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
		 FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position`,
		[schema],
	)
	for (const c of cols.rows) {
		out.push(
			`column ${c.table_name}.${c.column_name} ${c.data_type}${c.is_nullable === 'NO' ? ' NOT NULL' : ''}${
				c.column_default ? ` DEFAULT ${c.column_default}` : ''
			}${c.is_identity === 'YES' ? ' IDENTITY' : ''}`,
		)
	}
	const cons = await pool.query(
		`SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
		 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		 WHERE n.nspname = $1 ORDER BY tbl, c.conname`,
		[schema],
	)
	for (const c of cons.rows) out.push(`constraint ${c.tbl} ${c.conname} ${c.def}`)
	const idx = await pool.query(
		'SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY tablename, indexname',
		[schema],
	)
	for (const i of idx.rows) out.push(`index ${i.indexdef}`)
	const fns = await pool.query(
		`SELECT pg_get_functiondef(p.oid) AS def FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		 WHERE n.nspname = $1 ORDER BY p.proname`,
		[schema],
	)
	for (const f of fns.rows) out.push(`function ${f.def.trim()}`)
	const trg = await pool.query(
		`SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
		 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT t.tgisinternal ORDER BY t.tgname`,
		[schema],
	)
	for (const t of trg.rows) out.push(`trigger ${t.def}`)
	const rel = await pool.query(
		`SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = $1 AND c.relkind = 'r' AND c.reloptions IS NOT NULL ORDER BY c.relname`,
		[schema],
	)
	for (const r of rel.rows) out.push(`options ${r.relname} ${r.reloptions.join(',')}`)
	return `${out.join('\n').replaceAll(`"${schema}"`, '{{schema}}').replaceAll(schema, '{{schema}}')}\n`
}
