/**
 * pg-boss 10.4.2 (the newest that runs on Node 20), on database `bench_pgboss`.
 *
 * pg-boss 10 has no per-worker concurrency setting: a `work()` loop fetches up to `batchSize`
 * jobs, hands them to the handler as an array, completes them in one statement, then sleeps
 * until the polling interval (0.5 s at least) is over. Concurrency c is one loop with
 * `batchSize: c` whose handler runs the batch at once; the loop is woken at once with
 * `notifyWorker` after a full batch, so it never idles while jobs wait (without that it would
 * process at most c jobs per 0.5 s). It has no push wake-up from other processes: a job
 * enqueued elsewhere waits for the next poll.
 */
import PgBoss from 'pg-boss'
import {
	type Consumer,
	databaseUrl,
	JOB_NAME,
	type Payload,
	type Producer,
	resetDatabase,
	type System,
} from '../common.js'

const DB = 'bench_pgboss'

function boss(): PgBoss {
	return new PgBoss({
		connectionString: databaseUrl(DB),
		supervise: false,
		schedule: false,
		migrate: true,
		max: 10,
	})
}

/** pg-boss 10.4.2, on its own database. */
export const pgboss: System = {
	key: 'pgboss',
	label: 'pg-boss 10.4.2',
	async reset() {
		await resetDatabase(DB)
		const b = boss()
		await b.start()
		await b.createQueue(JOB_NAME)
		await b.stop({ graceful: false, wait: true })
	},
	async producer(): Promise<Producer> {
		const b = boss()
		b.on('error', (err) => console.error('pg-boss:', err))
		await b.start()
		return {
			async enqueueMany(payloads) {
				await b.insert(payloads.map((data) => ({ name: JOB_NAME, data })))
			},
			async enqueue(payload) {
				await b.send(JOB_NAME, payload)
			},
			async close() {
				await b.stop({ graceful: false, wait: true })
			},
		}
	},
	async consumer({ concurrency, onJob }): Promise<Consumer> {
		const b = boss()
		b.on('error', (err) => console.error('pg-boss:', err))
		await b.start()
		let workerId: string | undefined
		workerId = await b.work<Payload>(
			JOB_NAME,
			{ batchSize: concurrency, pollingIntervalSeconds: 0.5 },
			async (jobs) => {
				await Promise.all(jobs.map(async (job) => onJob(job.data)))
				if (jobs.length === concurrency && workerId) b.notifyWorker(workerId)
			},
		)
		return {
			async close() {
				await b.stop({ graceful: true, wait: true, timeout: 5000 })
			},
		}
	},
}
