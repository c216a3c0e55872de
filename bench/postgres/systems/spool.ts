/**
 * spool on PostgreSQL (`postgres({ connectionString, schema })` from spool/postgres), through its
 * public API, on database `bench_spool`, schema `spool`: `startMany` for bulk enqueue, `start`
 * one at a time, a worker queue at the given concurrency with the default settings otherwise.
 */
import { createJob, createQueue, silentLogger } from '../../../src/index.js'
import { postgres } from '../../../src/storage/postgres/index.js'
import {
	type Consumer,
	databaseUrl,
	fillFinished,
	JOB_NAME,
	type Payload,
	type Producer,
	resetDatabase,
	type System,
} from '../common.js'

const DB = 'bench_spool'
const SCHEMA = 'spool'

const prefetchOf = (v: string): number | 'auto' => (v === 'auto' ? 'auto' : Number(v))

const storage = () => postgres({ connectionString: databaseUrl(DB), schema: SCHEMA })

function job(onJob: (payload: Payload) => void) {
	return createJob({ name: JOB_NAME }, async (payload: Payload) => {
		onJob(payload)
	})
}

/** spool on PostgreSQL. */
export const spool: System = {
	key: 'spool',
	label: 'spool (PostgreSQL)',
	async reset() {
		await resetDatabase(DB)
		const queue = createQueue({
			jobs: { noop: job(() => {}) },
			storage: storage(),
			worker: false,
			logger: silentLogger,
		})
		await queue.ready
		await queue.close()
	},
	async fillFinished(count) {
		await fillFinished(databaseUrl(DB), SCHEMA, count)
	},
	async producer(): Promise<Producer> {
		const queue = createQueue({
			jobs: { noop: job(() => {}) },
			storage: storage(),
			worker: false,
			logger: silentLogger,
		})
		await queue.ready
		return {
			async enqueueMany(payloads) {
				await queue.jobs.noop.startMany(payloads.map((input) => ({ input })))
			},
			async enqueue(payload) {
				await queue.jobs.noop.start(payload)
			},
			async close() {
				await queue.close()
			},
		}
	},
	async consumer({ concurrency, onJob }): Promise<Consumer> {
		const queue = createQueue({
			jobs: { noop: job(onJob) },
			storage: storage(),
			concurrency,
			// The default worker settings (on PostgreSQL: worker.prefetch 'auto'). BENCH_SPOOL_PREFETCH=n
			// (or 'auto') and BENCH_SPOOL_BATCH=n set worker.prefetch and worker.batchSize.
			worker: {
				...(process.env.BENCH_SPOOL_PREFETCH
					? { prefetch: prefetchOf(process.env.BENCH_SPOOL_PREFETCH) }
					: {}),
				...(process.env.BENCH_SPOOL_BATCH ? { batchSize: Number(process.env.BENCH_SPOOL_BATCH) } : {}),
			},
			logger: silentLogger,
		})
		await queue.ready
		return {
			async close() {
				await queue.close()
			},
		}
	},
}
