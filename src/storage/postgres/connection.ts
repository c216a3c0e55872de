/** Checking connections out of a `pg` pool safely. */
import type pg from 'pg'

/** Swallows a checked-out connection's 'error' events (the failing query reports it). */
const ignoreError = (): void => {}

/**
 * Checks a connection out of the pool for a transaction. While checked out, a connection that
 * drops (a restart, pg_terminate_backend) emits 'error' on the client, which would crash the
 * process without a listener; the query under way fails with it instead and the caller retries.
 */
export async function checkout(pool: pg.Pool): Promise<pg.PoolClient> {
	const client = await pool.connect()
	client.on('error', ignoreError)
	return client
}

/** Returns a connection from `checkout`, destroying it if it broke. */
export function checkin(client: pg.PoolClient, broken: boolean): void {
	client.off('error', ignoreError)
	client.release(broken)
}
