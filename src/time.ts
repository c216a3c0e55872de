import { ConfigError } from './errors.js'

/** A duration: milliseconds as a number, or text such as `'250ms'`, `'3s'`, `'5m'`, `'1h'`, `'2d'`. */
export type Duration = number | `${number}${DurationUnit}` | `${number} ${DurationUnit}`

/** The units a duration string may use. */
export type DurationUnit =
	| 'ms'
	| 's'
	| 'm'
	| 'h'
	| 'd'
	| 'w'
	| 'sec'
	| 'secs'
	| 'second'
	| 'seconds'
	| 'min'
	| 'mins'
	| 'minute'
	| 'minutes'
	| 'hour'
	| 'hours'
	| 'day'
	| 'days'
	| 'week'
	| 'weeks'

/** A frequency: `'3/s'`, `'10/m'`, `'1 per second'`, `'2 per 5 minutes'`. */
export type Frequency = `${number}/${string}` | `${number} per ${string}`

const UNIT_MS: Record<string, number> = {
	ms: 1,
	s: 1000,
	sec: 1000,
	secs: 1000,
	second: 1000,
	seconds: 1000,
	m: 60_000,
	min: 60_000,
	mins: 60_000,
	minute: 60_000,
	minutes: 60_000,
	h: 3_600_000,
	hour: 3_600_000,
	hours: 3_600_000,
	d: 86_400_000,
	day: 86_400_000,
	days: 86_400_000,
	w: 604_800_000,
	week: 604_800_000,
	weeks: 604_800_000,
}

const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i

/**
 * Parses a duration into milliseconds. Throws a `ConfigError` quoting the bad value, so call it
 * when a definition is made, never while a job runs.
 */
export function parseDuration(value: Duration | string, what = 'duration'): number {
	if (typeof value === 'number') {
		if (!Number.isFinite(value) || value < 0) {
			throw new ConfigError(`Invalid ${what}: ${value}. Use a number of milliseconds >= 0 or text like '5s'.`)
		}
		return value
	}
	const match = typeof value === 'string' ? DURATION_RE.exec(value) : null
	const unit = match ? UNIT_MS[match[2]!.toLowerCase()] : undefined
	if (!match || unit === undefined) {
		throw new ConfigError(
			`Invalid ${what}: '${String(value)}'. Use milliseconds or text like '250ms', '3s', '5m', '1h', '2d'.`,
		)
	}
	return Math.round(Number(match[1]) * unit)
}

/** A parsed frequency: `count` events per `perMs` milliseconds. */
export interface Rate {
	readonly count: number
	readonly perMs: number
}

const FREQ_SLASH_RE = /^\s*(\d+)\s*\/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$/i
const FREQ_PER_RE = /^\s*(\d+)\s+per\s+(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$/i

/** Parses a frequency such as `'3/s'` or `'2 per 5 minutes'`. Throws a `ConfigError` quoting it. */
export function parseFrequency(value: Frequency | string, what = 'frequency'): Rate {
	const match = typeof value === 'string' ? (FREQ_SLASH_RE.exec(value) ?? FREQ_PER_RE.exec(value)) : null
	const unit = match ? UNIT_MS[match[3]!.toLowerCase()] : undefined
	const count = match ? Number(match[1]) : 0
	if (!match || unit === undefined || count < 1) {
		throw new ConfigError(
			`Invalid ${what}: '${String(value)}'. Use text like '3/s', '10/m', '1 per second' or '2 per 5 minutes'.`,
		)
	}
	const n = match[2] === undefined ? 1 : Number(match[2])
	return { count, perMs: Math.round(n * unit) }
}

/** Whether a string reads as a frequency rather than a duration. */
export function isFrequency(value: string): boolean {
	return FREQ_SLASH_RE.test(value) || FREQ_PER_RE.test(value)
}

/** A timer handle returned by a Clock. */
export interface TimerHandle {
	/** Lets the process exit while this timer is pending. */
	unref?(): unknown
}

/**
 * The source of time for a queue and its storage. The system clock is the default; tests pass
 * `createTestClock()` from `spool/testing` to move time by hand (backoff, delays, sleep, cron).
 */
export interface Clock {
	/** Milliseconds since the epoch. */
	now(): number
	/** Calls `fn` after `ms` milliseconds of this clock's time. */
	setTimeout(fn: () => void, ms: number): TimerHandle
	/** Cancels a timer made by this clock's setTimeout. */
	clearTimeout(handle: TimerHandle): void
}

/** The real clock: Date.now and the event loop's timers. */
export const systemClock: Clock = {
	now: () => Date.now(),
	setTimeout: (fn, ms) => setTimeout(fn, ms),
	clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}
