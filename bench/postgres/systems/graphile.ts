/**
 * graphile-worker 0.17.3 (the newest that runs on Node 20), on database `bench_graphile`, with
 * its batching on: a local queue of 500 jobs fetched and locked at once, and completions
 * batched with no added delay (completeJobBatchDelay 0, failJobBatchDelay 0).
 */
import { Logger, makeWorkerUtils, type Runner, run, type WorkerUtils } from 'graphile-worker'
import {
	type Consumer,
	databaseUrl,
	JOB_NAME,
	type Payload,
	type Producer,
	resetDatabase,
	type System,
} from '../common.js'

const DB = 'bench_graphile'

const preset = {
	worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
}

/** graphile-worker 0.17.3 with localQueue size 500 and completeJobBatchDelay 0. */
export const graphile: System = {
	key: 'graphile',
	label: 'graphile-worker 0.17.3 (localQueue 500, completeJobBatchDelay 0)',
	async reset() {
		await resetDatabase(DB)
		const utils = await makeWorkerUtils({ connectionString: databaseUrl(DB) })
		await utils.migrate()
		await utils.release()
	},
	async producer(): Promise<Producer> {
		const utils: WorkerUtils = await makeWorkerUtils({ connectionString: databaseUrl(DB) })
		return {
			async enqueueMany(payloads) {
				await utils.addJobs(payloads.map((payload) => ({ identifier: JOB_NAME, payload })))
			},
			async enqueue(payload) {
				await utils.addJob(JOB_NAME, payload)
			},
			async close() {
				await utils.release()
			},
		}
	},
	async consumer({ concurrency, onJob }): Promise<Consumer> {
		const runner: Runner = await run({
			connectionString: databaseUrl(DB),
			concurrency,
			// graphile-worker warns when its pool is smaller than its concurrency: follow its advice.
			maxPoolSize: Math.max(10, concurrency),
			noHandleSignals: true,
			pollInterval: 1000,
			logger: quietLogger(),
			preset,
			taskList: {
				[JOB_NAME]: async (payload) => {
					onJob(payload as Payload)
				},
			},
		})
		return {
			async close() {
				await runner.stop()
			},
		}
	},
}

/** graphile-worker's logger, warnings and errors only. */
function quietLogger(): Logger {
	return new Logger(() => (level: string, message: string) => {
		if (level === 'error' || level === 'warning') console.error(`graphile-worker ${level}: ${message}`)
	})
}
