/**
 * The SQL of the PostgreSQL storage lives in .sql files beside this module (copied into dist by
 * the build): numbered migrations (`001_init.sql`, ...) and `queries.sql`, one statement per named
 * query. They are read once, at first use, and `{{schema}}` is replaced by the schema's quoted name.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ConfigError } from '../../errors.js'

const DIR = fileURLToPath(new URL('./sql/', import.meta.url))

/** The names of the statements in queries.sql. */
export type QueryName =
	| 'insertMany'
	| 'insertManyFresh'
	| 'enqueueKeyed'
	| 'enqueueClaimed'
	| 'claim'
	| 'claimById'
	| 'dedupeHolders'
	| 'heartbeat'
	| 'settle'
	| 'complete'
	| 'appendLogs'
	| 'reap'
	| 'wake'
	| 'cancel'
	| 'replayIds'
	| 'replayName'
	| 'prune'
	| 'getJob'
	| 'listJobs'
	| 'stats'
	| 'getSteps'
	| 'saveStep'
	| 'keyedCandidates'
	| 'lockKeys'
	| 'activeByKey'
	| 'claimSeqs'
	| 'getFlows'
	| 'setFlow'
	| 'replacePending'
	| 'jobStatus'
	| 'setConcurrency'
	| 'setRunAt'
	| 'pause'
	| 'resume'
	| 'listPaused'
	| 'addWaiter'
	| 'getWaiter'
	| 'trimWaiter'
	| 'deleteWaiter'
	| 'publish'

/** One migration: its version (the file's number), name and SQL for a schema. */
export interface Migration {
	readonly version: number
	readonly name: string
	readonly sql: string
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,49}$/

/** Checks a schema name: plain lower-case identifiers only, so it can be spliced into SQL safely. */
export function checkSchema(schema: string): string {
	if (typeof schema !== 'string' || !SCHEMA_RE.test(schema)) {
		throw new ConfigError(
			`The PostgreSQL schema must be a plain lower-case identifier (letters, digits, _; at most 50 characters), got ${JSON.stringify(schema)}.`,
		)
	}
	return schema
}

/** The NOTIFY channel of a schema. */
export function channelOf(schema: string): string {
	return `${schema}_jobs`
}

function render(sql: string, schema: string): string {
	return sql.replaceAll('{{schema}}', `"${schema}"`).replaceAll('{{channel}}', channelOf(schema))
}

let rawQueries: Map<QueryName, string> | null = null

function parseQueries(): Map<QueryName, string> {
	if (rawQueries) return rawQueries
	const text = readFileSync(`${DIR}queries.sql`, 'utf8')
	const out = new Map<QueryName, string>()
	let name: string | null = null
	let body: string[] = []
	const end = () => {
		if (name) out.set(name as QueryName, body.join('\n').trim().replace(/;\s*$/, ''))
	}
	for (const line of text.split('\n')) {
		const m = /^-- name: (\w+)\s*$/.exec(line)
		if (m) {
			end()
			name = m[1]!
			body = []
		} else if (name) {
			body.push(line)
		}
	}
	end()
	rawQueries = out
	return out
}

/** Every named query, rendered for a schema. */
export function queriesFor(schema: string): Record<QueryName, string> {
	const out: Partial<Record<QueryName, string>> = {}
	for (const [name, sql] of parseQueries()) out[name] = render(sql, schema)
	return out as Record<QueryName, string>
}

/** Every migration in version order, rendered for a schema. */
export function migrationsFor(schema: string): Migration[] {
	return readdirSync(DIR)
		.filter((f) => /^\d+_[\w-]+\.sql$/.test(f))
		.sort()
		.map((f) => ({
			version: Number.parseInt(f, 10),
			name: f.replace(/\.sql$/, ''),
			sql: render(readFileSync(`${DIR}${f}`, 'utf8'), schema),
		}))
}
