/**
 * Group commit for enqueues made outside a transaction: small `enqueue` calls that arrive while
 * another is being written (or in the same turn of the event loop) are written together, as one
 * statement and one commit, instead of one commit each. Keyless jobs and jobs with idempotency or
 * dedupe keys gather in batchers of their own (their statements differ); keyed jobs of several
 * calls go through enqueue_one one after another in call order, so keys decide as if the calls had
 * been written one by one in that order. A durable commit waits for the WAL flush
 * (about a millisecond on this kind of disk), so concurrent callers, each awaiting its own
 * `start()`, would otherwise be capped near one job per flush; together they share it.
 *
 * Each call still resolves only after the statement holding its jobs committed, so an enqueue that
 * returned survives a crash exactly as before. A lone call (nothing in flight) is written in the
 * next turn of the event loop. If a shared write fails for any reason other than the server being
 * unreachable, each call is written again on its own, so an error reaches only the call it
 * belongs to.
 */
import { StorageUnavailableError } from '../../errors.js'
import type { EnqueueResult, NewJob } from '../contract.js'

/** Writes jobs in one statement; `now` is one time for all, or one per job. */
export type BatchWrite = (
	jobs: readonly NewJob[],
	now: number | readonly number[],
) => Promise<EnqueueResult[]>

interface Entry {
	readonly jobs: readonly NewJob[]
	readonly now: number
	readonly resolve: (results: EnqueueResult[]) => void
	readonly reject: (err: unknown) => void
}

export class EnqueueBatcher {
	private pending: Entry[] = []
	private inFlight = 0
	private scheduled = false
	private drained: (() => void)[] = []

	/**
	 * @param write the statement that stores a batch.
	 * @param distinctIds whether `write` needs the ids of a batch distinct (keyless inserts); if
	 *   two calls give the same id, they are then written one after the other.
	 * @param maxInFlight how many batches may be written at once (on as many connections).
	 */
	constructor(
		private readonly write: BatchWrite,
		private readonly distinctIds: boolean,
		private readonly maxInFlight = 2,
	) {}

	/** Queues the jobs of one call; resolves with their results once their batch committed. */
	add(jobs: readonly NewJob[], now: number): Promise<EnqueueResult[]> {
		return new Promise((resolve, reject) => {
			this.pending.push({ jobs, now, resolve, reject })
			this.schedule()
		})
	}

	/** Resolves once every call made so far was written (or failed). */
	drain(): Promise<void> {
		if (this.pending.length === 0 && this.inFlight === 0) return Promise.resolve()
		this.flush()
		return new Promise((resolve) => this.drained.push(resolve))
	}

	private schedule(): void {
		// Writes under way: a finishing one takes what waits.
		if (this.scheduled || this.inFlight >= this.maxInFlight) return
		this.scheduled = true
		// Calls of this turn of the event loop (a Promise.all of starts) join the same batch.
		setImmediate(() => {
			this.scheduled = false
			this.flush()
		})
	}

	private flush(): void {
		if (this.pending.length === 0 || this.inFlight >= this.maxInFlight) return
		const batch = this.pending
		this.pending = []
		this.inFlight++
		void this.writeBatch(batch).finally(() => {
			this.inFlight--
			if (this.pending.length > 0) this.flush()
			else if (this.inFlight === 0) {
				const waiting = this.drained
				this.drained = []
				for (const resolve of waiting) resolve()
			}
		})
	}

	private async writeBatch(batch: readonly Entry[]): Promise<void> {
		if (batch.length === 1) return this.writeAlone(batch[0]!)
		const jobs: NewJob[] = []
		const ids = new Set<string>()
		let sameNow = true
		for (const e of batch) {
			for (const j of e.jobs) {
				jobs.push(j)
				if (this.distinctIds) ids.add(j.id)
			}
			sameNow &&= e.now === batch[0]!.now
		}
		// The same id from two calls: let the single-call path decide which one exists, in order.
		if (this.distinctIds && ids.size !== jobs.length) {
			for (const e of batch) await this.writeAlone(e)
			return
		}
		const now = sameNow ? batch[0]!.now : batch.flatMap((e) => e.jobs.map(() => e.now))
		let results: EnqueueResult[]
		try {
			results = await this.write(jobs, now)
		} catch (err) {
			if (err instanceof StorageUnavailableError) {
				for (const e of batch) e.reject(err)
				return
			}
			// A job of one call may be at fault: give each call its own statement and its own error.
			await Promise.all(batch.map((e) => this.writeAlone(e)))
			return
		}
		let at = 0
		for (const e of batch) {
			e.resolve(results.slice(at, at + e.jobs.length))
			at += e.jobs.length
		}
	}

	private async writeAlone(e: Entry): Promise<void> {
		try {
			e.resolve(await this.write(e.jobs, e.now))
		} catch (err) {
			e.reject(err)
		}
	}
}
