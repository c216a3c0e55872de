import type { Clock, TimerHandle } from '../time.js'

/** A clock that moves only when told: backoff, delays, sleeps and cron run on it without waiting. */
export interface TestClock extends Clock {
	/** Moves time forward by `ms`, firing every timer that falls due, in order. */
	advance(ms: number): Promise<void>
	/** Moves time to `at` (ms since epoch), firing timers due by then. */
	set(at: number): Promise<void>
	/** Timers waiting to fire. */
	readonly pendingTimers: number
}

interface Timer extends TimerHandle {
	at: number
	seq: number
	fn: () => void
	cancelled: boolean
}

/**
 * Creates a controllable clock starting at `start` (default 2026-01-01T00:00:00Z). Between timers
 * it yields to the event loop so that work a timer starts (a claim, a settle) can finish first.
 */
export function createTestClock(start = Date.UTC(2026, 0, 1)): TestClock {
	let now = start
	let seq = 0
	const timers = new Set<Timer>()
	const flush = () => new Promise<void>((r) => setImmediate(r))
	const runUntil = async (target: number) => {
		for (;;) {
			await flush()
			let next: Timer | null = null
			for (const t of timers) {
				if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t
			}
			if (!next) break
			timers.delete(next)
			now = Math.max(now, next.at)
			next.fn()
		}
		now = Math.max(now, target)
		await flush()
	}
	return {
		now: () => now,
		setTimeout(fn, ms) {
			const t: Timer = { at: now + Math.max(0, ms), seq: seq++, fn, cancelled: false, unref() {} }
			timers.add(t)
			return t
		},
		clearTimeout(handle) {
			timers.delete(handle as Timer)
		},
		advance: (ms) => runUntil(now + ms),
		set: (at) => runUntil(at),
		get pendingTimers() {
			return timers.size
		},
	}
}
