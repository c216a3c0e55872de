/**
 * BullMQ 6.7 on both of its backends: Redis (127.0.0.1:6379, its own key prefix, obliterated
 * before each run) and PostgreSQL (the `createPostgresBackend` that ships inside the bullmq
 * package since 6.x, on database `bench_bullmqpg`). Same Queue/Worker code on both.
 */
import { createPostgresBackend, Queue, Worker, withBackend } from 'bullmq'
import {
	type Consumer,
	DB_SUFFIX,
	databaseUrl,
	JOB_NAME,
	type Payload,
	type Producer,
	REDIS,
	resetDatabase,
	type System,
} from '../common.js'

const PREFIX = `spoolbench${DB_SUFFIX}`
const redisConnection = { ...REDIS, maxRetriesPerRequest: null }

/** BullMQ 6.7 on Redis. */
export const bullmqRedis: System = {
	key: 'bullmq-redis',
	label: 'BullMQ 6.7 (Redis)',
	async reset() {
		const queue = new Queue(JOB_NAME, { connection: redisConnection, prefix: PREFIX })
		await queue.obliterate({ force: true })
		await queue.close()
	},
	async producer(): Promise<Producer> {
		const queue = new Queue<Payload>(JOB_NAME, { connection: redisConnection, prefix: PREFIX })
		await queue.waitUntilReady()
		return {
			async enqueueMany(payloads) {
				await queue.addBulk(payloads.map((data) => ({ name: JOB_NAME, data })))
			},
			async enqueue(payload) {
				await queue.add(JOB_NAME, payload)
			},
			async close() {
				await queue.close()
			},
		}
	},
	async consumer({ concurrency, onJob }): Promise<Consumer> {
		const worker = new Worker<Payload>(
			JOB_NAME,
			async (job) => {
				onJob(job.data)
			},
			{ connection: redisConnection, prefix: PREFIX, concurrency },
		)
		await worker.waitUntilReady()
		return {
			async close() {
				await worker.close()
			},
		}
	},
}

const PG_DB = 'bench_bullmqpg'
const pgBackend = withBackend(createPostgresBackend)
const pgConnection = () => ({ connectionString: databaseUrl(PG_DB), schema: 'bullmq', migrate: true })

/** BullMQ 6.7 on its PostgreSQL backend. */
export const bullmqPostgres: System = {
	key: 'bullmq-pg',
	label: 'BullMQ 6.7 (PostgreSQL backend)',
	async reset() {
		await resetDatabase(PG_DB)
		const queue = new pgBackend.Queue(JOB_NAME, { connection: pgConnection() })
		await queue.waitUntilReady()
		await queue.close()
	},
	async producer(): Promise<Producer> {
		const queue = new pgBackend.Queue<Payload>(JOB_NAME, { connection: pgConnection() })
		await queue.waitUntilReady()
		return {
			async enqueueMany(payloads) {
				await queue.addBulk(payloads.map((data) => ({ name: JOB_NAME, data })))
			},
			async enqueue(payload) {
				await queue.add(JOB_NAME, payload)
			},
			async close() {
				await queue.close()
			},
		}
	},
	async consumer({ concurrency, onJob }): Promise<Consumer> {
		const worker = new pgBackend.Worker<Payload>(
			JOB_NAME,
			async (job) => {
				onJob(job.data)
			},
			{ connection: pgConnection(), concurrency },
		)
		await worker.waitUntilReady()
		return {
			async close() {
				await worker.close()
			},
		}
	},
}
