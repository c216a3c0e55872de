/**
 * Seed 000's `createJobQueue({ storagePath, workerCount }, handlers)` in spool: the file log keeps
 * the jobs in memory and appends every change to one file; a restart replays it, and jobs that were
 * running when the process died run again.
 */
import { createQueue, type Queue, silentLogger } from '../../src/index.js'
import { fileLog } from '../../src/storage/file/index.js'

export interface JobQueueOptions {
	/** Where to keep the log (gitignore it). */
	readonly storagePath: string
	/** How many jobs run at once. */
	readonly workerCount: number
}

export function createJobQueue<H extends Record<string, (payload: never) => unknown>>(
	options: JobQueueOptions,
	handlers: H,
): Queue<H> {
	return createQueue({
		jobs: handlers,
		storage: fileLog({ path: options.storagePath }), // durability 'fsync' by default
		concurrency: options.workerCount,
		logger: silentLogger,
	})
}
