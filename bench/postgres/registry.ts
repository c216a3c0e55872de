/** The systems of the PostgreSQL benchmark, in the order they run. */
import type { System } from './common.js'
import { bullmqPostgres, bullmqRedis } from './systems/bullmq.js'
import { graphile } from './systems/graphile.js'
import { pgboss } from './systems/pgboss.js'
import { raw } from './systems/raw.js'
import { spool } from './systems/spool.js'

/** Every system, spool first; the raw baseline last. */
export const SYSTEMS: readonly System[] = [spool, pgboss, graphile, bullmqRedis, bullmqPostgres, raw]

/** The system with this key; throws on an unknown one. */
export function systemByKey(key: string): System {
	const system = SYSTEMS.find((s) => s.key === key)
	if (!system) throw new Error(`unknown system ${key}; known: ${SYSTEMS.map((s) => s.key).join(', ')}`)
	return system
}
