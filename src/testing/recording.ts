import { decodeJson, type JsonValue } from '../json.js'
import type { NewJob, Storage } from '../storage/contract.js'
import { memory } from '../storage/memory.js'

/** An enqueue seen by a recording storage, input decoded. */
export interface RecordedJob extends Omit<NewJob, 'input'> {
	readonly input: JsonValue
}

/** A storage that records enqueues and runs nothing (seed 003's DummyBackend). */
export interface RecordingStorage extends Storage {
	/** Every job enqueued so far, in order. */
	readonly jobs: readonly RecordedJob[]
	/** Forgets the recorded jobs. */
	clear(): void
}

/**
 * A storage for unit tests of code that enqueues: it keeps what is enqueued (dedupe and
 * idempotency keys apply as on any storage) but never hands a job to a worker.
 */
export function recordingStorage(): RecordingStorage {
	const inner = memory()
	const jobs: RecordedJob[] = []
	return {
		...bindAll(inner),
		description: 'recording',
		jobs,
		clear: () => {
			jobs.length = 0
		},
		async enqueue(params) {
			const results = await inner.enqueue(params)
			params.jobs.forEach((job, i) => {
				if (results[i]?.status === 'created') jobs.push({ ...job, input: decodeJson(job.input) })
			})
			return results
		},
		async claim() {
			return []
		},
		async claimOrEnqueue(params) {
			const r = await inner.claimOrEnqueue(params)
			if (r.status !== 'deduped') jobs.push({ ...params.job, input: decodeJson(params.job.input) })
			return r
		},
	}
}

function bindAll(storage: Storage): Storage {
	const out: Record<string, unknown> = {}
	let proto: object | null = storage
	while (proto && proto !== Object.prototype) {
		for (const key of Object.getOwnPropertyNames(proto)) {
			const value = (storage as unknown as Record<string, unknown>)[key]
			if (key !== 'constructor' && !(key in out)) {
				out[key] = typeof value === 'function' ? value.bind(storage) : value
			}
		}
		proto = Object.getPrototypeOf(proto)
	}
	return out as unknown as Storage
}
