/**
 * The harness of the conformance suite: how a storage under test is made, and small helpers the
 * cases share. A storage's test file calls `runConformance(name, factory)`.
 */
import type { JsonText } from '../../src/json.js'
import type { NewJob, Storage } from '../../src/storage/contract.js'

/** Makes storages for the suite. */
export interface StorageFactory {
	/**
	 * A new, empty place to store jobs (a fresh file, schema or database), opened. Calling
	 * `reopen` on the result gives another storage over the same place, as a restarted process would.
	 */
	create(): Promise<TestStorage>
	/** Whether jobs survive `close` + `reopen`. False for memory. */
	readonly durable: boolean
}

/** A storage made by a factory, with a way to open the same place again. */
export interface TestStorage {
	readonly storage: Storage
	/** Closes nothing; returns a new storage over the same place, opened. */
	reopen(): Promise<Storage>
	/** Deletes the place (after every storage over it was closed). */
	destroy(): Promise<void>
}

let counter = 0

/** A new job row with sensible defaults. */
export function newJob(over: Partial<NewJob> & { name?: string } = {}): NewJob {
	counter++
	return {
		id: over.id ?? `job-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`,
		name: over.name ?? 'work',
		input: over.input ?? (JSON.stringify({ n: counter }) as JsonText),
		priority: over.priority ?? 0,
		runAt: over.runAt ?? T0,
		maxAttempts: over.maxAttempts ?? 3,
		dedupeKey: over.dedupeKey ?? null,
		dedupeScope: over.dedupeScope ?? 'pending+active',
		idempotencyKey: over.idempotencyKey ?? null,
		parentId: over.parentId ?? null,
		backoff: over.backoff ?? null,
		concurrency: over.concurrency ?? null,
		throttle: over.throttle ?? null,
		debounce: over.debounce ?? null,
		tick: over.tick ?? null,
	}
}

/** The suite's epoch: every case passes times relative to it. */
export const T0 = Date.UTC(2026, 0, 1)

/** JSON text for tests. */
export function json(value: unknown): JsonText {
	return JSON.stringify(value) as JsonText
}

/** Claim parameters with defaults. */
export function claimParams(
	over: { names?: string[]; limit?: number; now?: number; leaseMs?: number; owner?: string } = {},
) {
	return {
		names: over.names ?? ['work'],
		owner: over.owner ?? 'w1',
		limit: over.limit ?? 10,
		leaseMs: over.leaseMs ?? 30_000,
		now: over.now ?? T0,
	}
}

/**
 * Wraps a storage so that a test can make its process "die": after `crash()`, every call hangs
 * forever, as calls from a killed process would never arrive. Used to test recovery in one process.
 */
export function crashable(inner: Storage): { storage: Storage; crash(): void } {
	let dead = false
	const storage = new Proxy(inner, {
		get(target, key, receiver) {
			const value = Reflect.get(target, key, receiver)
			if (typeof value !== 'function') return value
			return (...args: unknown[]) => {
				if (dead) return key === 'close' ? Promise.resolve() : new Promise(() => {})
				return (value as (...a: unknown[]) => unknown).apply(target, args)
			}
		},
	})
	return {
		storage,
		crash() {
			dead = true
		},
	}
}
