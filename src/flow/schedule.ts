/**
 * The cron runner of one queue: a timer per scheduled job on the queue's clock. At each tick it
 * asks the queue to enqueue that tick (guarded, so one process wins per tick); at start it
 * enqueues missed ticks for jobs with `catchUp`.
 */
import type { Clock, TimerHandle } from '../time.js'
import type { CronScheduler, ResolvedCron } from './cron.js'

/** Longest single timer: longer waits are split (Node timers overflow past ~24.8 days). */
const MAX_TIMER_MS = 3_600_000

/** What the runner needs from the queue. */
export interface CronDeps {
	readonly scheduler: CronScheduler
	readonly clock: Clock
	/** Enqueues the run of `name` for the tick at `at` (ms), guarded by the tick. */
	readonly fire: (name: string, cron: ResolvedCron, at: number) => Promise<void>
	/** The latest tick enqueued for `name` by any process, or null. */
	readonly lastTick: (name: string) => Promise<number | null>
	readonly report: (error: unknown) => void
}

export class CronRunner {
	private readonly timers = new Map<string, TimerHandle>()
	private readonly inflight = new Set<Promise<void>>()
	private starting: Promise<void> = Promise.resolve()
	private stopped = false

	constructor(
		private readonly entries: ReadonlyMap<string, ResolvedCron>,
		private readonly deps: CronDeps,
	) {}

	/** Enqueues missed ticks (where asked) and arms a timer per job. */
	start(): Promise<void> {
		this.starting = this.doStart()
		return this.starting
	}

	/** Resolves when the start and every tick being enqueued now are done (`queue.drain`). */
	async idle(): Promise<void> {
		await this.starting
		while (this.inflight.size > 0) await Promise.allSettled([...this.inflight])
	}

	private async doStart(): Promise<void> {
		for (const [name, cron] of this.entries) {
			const now = this.deps.clock.now()
			try {
				if (cron.catchUp > 0) await this.catchUp(name, cron, now)
			} catch (err) {
				this.deps.report(err)
			}
			if (this.stopped) return
			this.arm(name, cron, now)
		}
	}

	private async catchUp(name: string, cron: ResolvedCron, now: number): Promise<void> {
		const last = await this.deps.lastTick(name)
		if (last === null) return
		const missed: number[] = []
		let at = last
		// Bounded walk: a schedule every second over a long downtime must not spin forever.
		for (let i = 0; i < 100_000; i++) {
			const next = this.deps.scheduler.next(cron.pattern, new Date(at), cron.timezone)
			if (!next || next.getTime() > now) break
			at = next.getTime()
			missed.push(at)
			if (missed.length > cron.catchUp) missed.shift()
		}
		for (const tick of missed) await this.deps.fire(name, cron, tick)
	}

	private arm(name: string, cron: ResolvedCron, after: number): void {
		if (this.stopped) return
		let next: Date | null
		try {
			next = this.deps.scheduler.next(cron.pattern, new Date(after), cron.timezone)
		} catch (err) {
			this.deps.report(err)
			return
		}
		if (!next) return
		const at = next.getTime()
		const wait = () => {
			const delay = Math.max(0, at - this.deps.clock.now())
			this.timers.set(
				name,
				this.deps.clock.setTimeout(
					() => {
						if (this.stopped) return
						if (this.deps.clock.now() < at) return wait()
						const p: Promise<void> = this.deps
							.fire(name, cron, at)
							.catch((err) => this.deps.report(err))
							.finally(() => {
								this.inflight.delete(p)
								this.arm(name, cron, at)
							})
						this.inflight.add(p)
					},
					Math.min(delay, MAX_TIMER_MS),
				),
			)
			this.timers.get(name)?.unref?.()
		}
		wait()
	}

	stop(): void {
		this.stopped = true
		for (const t of this.timers.values()) this.deps.clock.clearTimeout(t)
		this.timers.clear()
	}
}
