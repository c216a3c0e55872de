/**
 * `spool/postgres`: the storage for many workers on many machines sharing one PostgreSQL database.
 *
 * ```ts
 * import { postgres } from 'spool/postgres'
 * const queue = createQueue({ jobs, storage: postgres({ connectionString: process.env.DATABASE_URL }) })
 * ```
 */
import type { Storage } from '../contract.js'
import { PostgresStorage, type PostgresStorageOptions } from './storage.js'

export { type MigrateOptions, migrate } from './migrate.js'
export type { PgQueryable, PostgresStorageOptions } from './storage.js'

/**
 * Creates a PostgreSQL storage. Tables live in their own schema (default `spool`), migrated at
 * open unless `migrate: false` (then run `spool migrate`). Pass `pool` to share your own `pg.Pool`.
 */
export function postgres(options: PostgresStorageOptions = {}): Storage {
	return new PostgresStorage(options)
}
