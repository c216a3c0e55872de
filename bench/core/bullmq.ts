/**
 * BullMQ on Redis, for context: the same no-op jobs processed at a concurrency, in one process.
 * Skipped (reported as such) when Redis does not answer on 127.0.0.1:6379.
 */
import { createConnection } from 'node:net'
import { Queue, Worker } from 'bullmq'
import { rate } from './util.js'

const connection = { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null }

/** Whether Redis answers on 127.0.0.1:6379. */
export function redisUp(): Promise<boolean> {
	return new Promise((resolve) => {
		const socket = createConnection(6379, '127.0.0.1')
		socket.setTimeout(500)
		socket.once('connect', () => {
			socket.end()
			resolve(true)
		})
		socket.once('error', () => resolve(false))
		socket.once('timeout', () => {
			socket.destroy()
			resolve(false)
		})
	})
}

/** Processes `jobs` no-op jobs at `concurrency`; completed jobs are removed, as spool's memory does not keep them. */
export async function bullmqProcess(jobs: number, concurrency: number): Promise<number> {
	const name = `spool-bench-${process.pid}-${concurrency}`
	const queue = new Queue(name, { connection })
	await queue.obliterate({ force: true })
	for (let done = 0; done < jobs; done += 1000) {
		const n = Math.min(1000, jobs - done)
		await queue.addBulk(
			Array.from({ length: n }, (_, i) => ({
				name: 'noop',
				data: { i },
				opts: { removeOnComplete: true, removeOnFail: true },
			})),
		)
	}
	let done = 0
	let finish: () => void = () => {}
	const all = new Promise<void>((resolve) => {
		finish = resolve
	})
	const t0 = performance.now()
	const worker = new Worker(name, async () => {}, { connection, concurrency })
	worker.on('completed', () => {
		if (++done === jobs) finish()
	})
	await all
	const ms = performance.now() - t0
	await worker.close()
	await queue.obliterate({ force: true })
	await queue.close()
	return rate(jobs, ms)
}
