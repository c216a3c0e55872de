/**
 * The systems of the PostgreSQL benchmark, in the order they run. Each is loaded on demand, so a
 * worker child process loads only its own system's library (its RSS is that system's, plus the
 * harness: node, tsx and pg).
 */
import type { System } from './common.js'

const LOADERS: Readonly<Record<string, () => Promise<System>>> = {
	spool: async () => (await import('./systems/spool.js')).spool,
	pgboss: async () => (await import('./systems/pgboss.js')).pgboss,
	graphile: async () => (await import('./systems/graphile.js')).graphile,
	'bullmq-redis': async () => (await import('./systems/bullmq.js')).bullmqRedis,
	'bullmq-pg': async () => (await import('./systems/bullmq.js')).bullmqPostgres,
	raw: async () => (await import('./systems/raw.js')).raw,
}

/** Every system's key, spool first; the raw baseline last. */
export const SYSTEM_KEYS: readonly string[] = Object.keys(LOADERS)

/** Loads the system with this key; throws on an unknown one. */
export async function loadSystem(key: string): Promise<System> {
	const load = LOADERS[key]
	if (!load) throw new Error(`unknown system ${key}; known: ${SYSTEM_KEYS.join(', ')}`)
	return load()
}
