/**
 * The lock file that makes one process the owner of a file log: `<log>.lock`, created exclusively,
 * holding the owner's PID and host name. A lock whose process is gone (killed, crashed) is stale
 * and taken over, under a second exclusive file so that two processes cannot both take it over.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { StorageUnavailableError } from '../../errors.js'

interface Owner {
	readonly pid: number
	readonly host: string
}

function readOwner(path: string): Owner | null | 'missing' {
	let text: string
	try {
		text = readFileSync(path, 'utf8')
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing'
		throw err
	}
	const [pid, host] = text.split('\n')
	const n = Number(pid)
	return Number.isInteger(n) && n > 0 && host ? { pid: n, host } : null
}

/** Whether a process with this PID is alive (a zombie, killed but not yet reaped, is not). */
export function isAlive(pid: number): boolean {
	try {
		process.kill(pid, 0)
	} catch (err) {
		return (err as NodeJS.ErrnoException).code === 'EPERM'
	}
	try {
		const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
		return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
	} catch {
		return true
	}
}

function createExclusive(path: string): boolean {
	let fd: number
	try {
		fd = openSync(path, 'wx')
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
		throw err
	}
	try {
		writeSync(fd, `${process.pid}\n${hostname()}\n`)
	} finally {
		closeSync(fd)
	}
	return true
}

function sleep(ms: number): Promise<void> {
	return new Promise((r) => setTimeout(r, ms))
}

/**
 * Takes the lock at `path` for this process, or throws `StorageUnavailableError` naming the
 * owner. `logPath` is for messages.
 */
export async function acquireLock(path: string, logPath: string): Promise<void> {
	const host = hostname()
	for (let attempt = 0; attempt < 50; attempt++) {
		if (createExclusive(path)) return
		let owner = readOwner(path)
		if (owner === 'missing') continue
		if (owner === null) {
			// Being written right now, or left empty by a process killed between create and write.
			await sleep(20)
			owner = readOwner(path)
			if (owner === 'missing') continue
		}
		if (owner !== null) {
			if (owner.host !== host) {
				throw new StorageUnavailableError(
					`The file log ${logPath} is locked by process ${owner.pid} on host '${owner.host}' (lock file ${path}), which cannot be checked from '${host}'. A file log belongs to one process on one machine; if that process is gone, delete the lock file.`,
				)
			}
			if (owner.pid !== process.pid && isAlive(owner.pid)) {
				throw new StorageUnavailableError(
					`The file log ${logPath} is in use by process ${owner.pid} (lock file ${path}). One process owns a file log at a time: stop that process first, or use the SQLite or PostgreSQL storage to share a queue between processes.`,
				)
			}
		}
		// Stale: its process is gone. Take it over under a second lock, so only one process does.
		const takeover = `${path}.takeover`
		if (!createExclusive(takeover)) {
			const other = readOwner(takeover)
			if (other !== 'missing' && (other === null || !isAlive(other.pid))) {
				try {
					unlinkSync(takeover)
				} catch {}
			}
			await sleep(10)
			continue
		}
		try {
			const again = readOwner(path)
			const same =
				again === 'missing' ||
				(again === null && owner === null) ||
				(again !== null && owner !== null && again.pid === owner.pid && again.host === owner.host)
			if (same && again !== 'missing') unlinkSync(path)
		} finally {
			unlinkSync(takeover)
		}
	}
	throw new StorageUnavailableError(`Could not take the lock ${path} of the file log ${logPath}; try again.`)
}

/** Removes the lock if this process holds it. */
export function releaseLock(path: string): void {
	const owner = readOwner(path)
	if (owner !== 'missing' && owner !== null && owner.pid === process.pid && owner.host === hostname()) {
		try {
			unlinkSync(path)
		} catch {}
	}
}
