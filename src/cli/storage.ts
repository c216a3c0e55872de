/**
 * Resolves a storage address (`--storage` or `SPOOL_URL`) to a storage. Each storage module is
 * imported only when its scheme is used, so `spool` never loads a database driver it does not need.
 *
 *   sqlite:path/to/file.db   SQLite (the default: sqlite:.spool/spool.db)
 *   file:path/to/spool.log   the file log (one process at a time)
 *   postgres://...           PostgreSQL (also postgresql://; `?schema=name` picks the schema)
 */
import { ConfigError } from '../errors.js'
import type { Storage } from '../storage/contract.js'

/** The storage used when neither `--storage` nor `SPOOL_URL` is given. */
export const DEFAULT_STORAGE = 'sqlite:.spool/spool.db'

/** A storage address, parsed. */
export type StorageAddress =
	| { readonly kind: 'sqlite'; readonly path: string }
	| { readonly kind: 'file'; readonly path: string }
	| { readonly kind: 'postgres'; readonly url: string; readonly schema?: string }

/** Parses a storage address; a bad one is a ConfigError saying which forms exist. */
export function parseStorageAddress(address: string): StorageAddress {
	const a = address.trim()
	const strip = (rest: string) => (rest.startsWith('//') ? rest.slice(2) : rest)
	if (a.startsWith('sqlite:')) {
		const path = strip(a.slice('sqlite:'.length))
		if (!path) throw new ConfigError(`The storage '${address}' has no path: use sqlite:path/to/file.db.`)
		return { kind: 'sqlite', path }
	}
	if (a.startsWith('file:')) {
		const path = strip(a.slice('file:'.length))
		if (!path) throw new ConfigError(`The storage '${address}' has no path: use file:path/to/spool.log.`)
		return { kind: 'file', path }
	}
	if (a.startsWith('postgres://') || a.startsWith('postgresql://')) {
		// `?schema=name` picks spool's schema (default `spool`); the rest goes to pg as it is.
		let url: URL
		try {
			url = new URL(a)
		} catch {
			throw new ConfigError(`The storage '${redact(address)}' is not a valid postgres:// URL.`)
		}
		const schema = url.searchParams.get('schema') ?? undefined
		url.searchParams.delete('schema')
		return { kind: 'postgres', url: url.toString(), schema }
	}
	if (/\.(db|sqlite|sqlite3)$/i.test(a)) return { kind: 'sqlite', path: a }
	throw new ConfigError(
		`Unknown storage '${address}': use sqlite:path/to/file.db, file:path/to/spool.log or postgres://user@host/db.`,
	)
}

/** Makes the storage an address names. Not opened yet. */
export async function resolveStorage(address: string | undefined): Promise<Storage> {
	const parsed = parseStorageAddress(address ?? DEFAULT_STORAGE)
	switch (parsed.kind) {
		case 'sqlite': {
			const { sqlite } = await import('../storage/sqlite/index.js')
			return sqlite({ path: parsed.path })
		}
		case 'file': {
			const { fileLog } = await import('../storage/file/index.js')
			return fileLog({ path: parsed.path })
		}
		case 'postgres': {
			const { postgres } = await import('../storage/postgres/index.js')
			return postgres({ connectionString: parsed.url, schema: parsed.schema })
		}
	}
}

/**
 * Creates or upgrades the storage's schema. PostgreSQL has its own `migrate`; the others migrate
 * when opened.
 */
export async function migrateStorage(address: string | undefined): Promise<string> {
	const parsed = parseStorageAddress(address ?? DEFAULT_STORAGE)
	if (parsed.kind === 'postgres') {
		const { migrate } = await import('../storage/postgres/index.js')
		const { applied } = await migrate({ connectionString: parsed.url, schema: parsed.schema })
		const what = `postgres:${redact(parsed.url)}/${parsed.schema ?? 'spool'}`
		return applied.length > 0 ? `${what} (applied ${applied.join(', ')})` : `${what} (up to date)`
	}
	const storage = await resolveStorage(address)
	try {
		await storage.open()
		return storage.description
	} finally {
		await storage.close()
	}
}

/** An address with its password hidden, for output. */
export function redact(url: string): string {
	return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@')
}
