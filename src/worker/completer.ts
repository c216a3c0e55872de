/**
 * The completer persists outcomes in batches. Outcomes that arrive in the same turn of the event
 * loop share one `settle` call (one transaction, one fsync): the completer trades a microtask of
 * latency for throughput. With a storage that has `settleAndClaim`, the same write claims jobs for
 * the slots the batch freed (see ClaimSource), so a busy worker makes one write per batch, not two.
 * If the storage is down, outcomes are kept and retried with backoff,
 * never dropped; if the process dies first, the leases expire and the reaper gives the jobs back.
 */
import type { ClaimedJob, ClaimRequest, Outcome, SettleResult, Storage } from '../storage/contract.js'
import type { Clock, TimerHandle } from '../time.js'

/** Told the result of one outcome's write, synchronously, in the order the outcomes were added. */
export interface WriteTarget {
	/**
	 * `ok`: the storage applied the outcome (false: the lease was lost). Returns true when it started
	 * work that goes on asynchronously (hooks, a promise's reactions) which the jobs claimed with
	 * the same write must not overtake.
	 */
	written(ok: boolean): boolean
}

/** `add`'s target: resolves a promise, whose reactions run later (so it counts as busy). */
class PromiseTarget implements WriteTarget {
	constructor(private readonly resolve: (ok: boolean) => void) {}
	written(ok: boolean): boolean {
		this.resolve(ok)
		return true
	}
}

/** Reports storage errors to the worker. */
export type ErrorReporter = (error: unknown, where: 'settle') => void

/**
 * The worker's side of claiming with a settle (storages with `settleAndClaim`): asked before each
 * write whether to claim with it, then given what was claimed.
 */
export interface ClaimSource {
	/** The claim to make with this write, or null (no free slot, or the worker is fetching itself). */
	take(): ClaimRequest | null
	/** What the write claimed for `take`'s request; null when the write failed (nothing claimed). */
	give(claimed: ClaimedJob[] | null, request: ClaimRequest): void
}

export class Completer {
	/** Outcomes waiting to be written, and who is told of each (same index). */
	private outcomes: Outcome[] = []
	private targets: WriteTarget[] = []
	private logs = new Map<string, string[]>()
	private scheduled = false
	private flushing: Promise<void> | null = null
	private retryDelay = 0
	private retryTimer: TimerHandle | null = null
	private stopped = false

	constructor(
		private readonly storage: Storage,
		private readonly clock: Clock,
		private readonly report: ErrorReporter,
		/** Set when the storage has `settleAndClaim`: each write also claims for the freed slots. */
		private readonly claims: ClaimSource | null = null,
		/** Told after each write that claimed nothing with it (retries and woken parents may be due). */
		private readonly written: (() => void) | null = null,
	) {}

	/** Queues an outcome; resolves with whether the storage applied it (false: lease lost). */
	add(outcome: Outcome): Promise<boolean> {
		return new Promise((resolve) => this.push(outcome, new PromiseTarget(resolve)))
	}

	/** Queues an outcome; `target.written` is told the result (no promise per outcome). */
	push(outcome: Outcome, target: WriteTarget): void {
		this.outcomes.push(outcome)
		this.targets.push(target)
		this.schedule()
	}

	/** Queues log lines of a job, written with its next outcome (or the next flush). */
	addLogs(id: string, lines: readonly string[]): void {
		let list = this.logs.get(id)
		if (!list) {
			list = []
			this.logs.set(id, list)
		}
		list.push(...lines)
	}

	/** How many outcomes wait to be written. */
	get backlog(): number {
		return this.outcomes.length
	}

	private schedule(): void {
		if (this.scheduled || this.flushing || this.retryTimer) return
		this.scheduled = true
		setImmediate(() => {
			this.scheduled = false
			void this.flush()
		})
	}

	/** Writes everything buffered; resolves when the buffer is empty or the storage failed. */
	flush(): Promise<void> {
		if (this.flushing) return this.flushing
		this.flushing = this.drain().finally(() => {
			this.flushing = null
			if (this.outcomes.length > 0 && !this.retryTimer) this.schedule()
		})
		return this.flushing
	}

	private async drain(): Promise<void> {
		let yieldFirst = false
		while (this.outcomes.length > 0 || this.logs.size > 0) {
			// The last write started its claimed jobs at once; if they finished synchronously, let
			// timers and I/O run before the next write rather than loop without a turn of the event loop.
			if (yieldFirst) await new Promise<void>((resolve) => setImmediate(resolve))
			yieldFirst = false
			const outcomes = this.outcomes
			const targets = this.targets
			const logs = this.logs
			this.outcomes = []
			this.targets = []
			// An empty map stays (nothing of it is written): no map per write for jobs that log nothing.
			if (logs.size > 0) this.logs = new Map()
			const request = outcomes.length > 0 ? (this.claims?.take() ?? null) : null
			let results: SettleResult[]
			let claimed: ClaimedJob[] = []
			try {
				const params = {
					outcomes,
					logs: logs.size > 0 ? logs : undefined,
					now: this.clock.now(),
				}
				if (request && this.storage.settleAndClaim) {
					const r = await this.storage.settleAndClaim({ ...params, claim: request })
					results = r.settled
					claimed = r.claimed
				} else {
					results = await this.storage.settle(params)
				}
				this.retryDelay = 0
			} catch (err) {
				if (request) this.claims?.give(null, request)
				// Put them back in front, in order, and try again later.
				this.outcomes = outcomes.concat(this.outcomes)
				this.targets = targets.concat(this.targets)
				if (logs !== this.logs) for (const [id, lines] of logs) this.addLogs(id, lines)
				this.report(err, 'settle')
				if (this.stopped) return
				this.retryDelay = Math.min(5000, this.retryDelay ? this.retryDelay * 2 : 100)
				this.retryTimer = this.clock.setTimeout(() => {
					this.retryTimer = null
					void this.flush()
				}, this.retryDelay)
				return
			}
			let busy = false
			for (let i = 0; i < targets.length; i++) {
				try {
					if (targets[i]!.written(results[i]?.ok ?? false)) busy = true
				} catch (err) {
					// A bug past this point must not keep the other outcomes of the batch unanswered.
					this.report(err, 'settle')
				}
			}
			if (request) {
				// The claimed jobs start after the settled ones ran their hooks: a retry claimed here must
				// not start before its failed attempt's onError. Nothing busy: start them now.
				if (busy) await new Promise<void>((resolve) => setImmediate(resolve))
				else yieldFirst = true
				this.claims?.give(claimed, request)
			} else if (outcomes.length > 0) {
				this.written?.()
			}
		}
	}

	/** Stops retrying on a timer; a last `flush` may still be called. */
	stop(): void {
		this.stopped = true
		if (this.retryTimer) {
			this.clock.clearTimeout(this.retryTimer)
			this.retryTimer = null
		}
	}
}
