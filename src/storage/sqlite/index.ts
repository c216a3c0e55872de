/**
 * `spool/sqlite`: the embedded default. One SQLite file (WAL), shared safely by the processes of
 * one host.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Storage } from '../contract.js'
import { SqliteStorage, type SqliteStorageOptions } from './storage.js'

export type { SqliteStorageOptions } from './storage.js'

/**
 * Creates a SQLite storage over the file at `path` (its folder is created if missing).
 *
 * ```ts
 * const queue = createQueue({ jobs, storage: sqlite({ path: '.spool/spool.db' }) })
 * ```
 */
export function sqlite(options: SqliteStorageOptions | string): Storage {
	const opts = typeof options === 'string' ? { path: options } : options
	if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true })
	return new SqliteStorage(opts)
}
