/**
 * Flow control options (seed 004): concurrency, throttle and debounce. This module turns the
 * user's options into plain specs stored with a job (`NewJob.concurrency`, `.throttle`,
 * `.debounce`), and holds the decisions every storage applies atomically, so that memory, SQLite
 * and PostgreSQL agree by construction: a storage only loads and saves the small per-key state.
 */
import { ConfigError } from '../errors.js'
import { type Duration, type Frequency, isFrequency, parseDuration, parseFrequency } from '../time.js'

// ---------------------------------------------------------------------------------------------
// Options, as users write them.

/** A concurrency limit given as an object. */
export interface ConcurrencyConfig {
	/** Jobs sharing an id share the limit, across job names. Default: the job's name. */
	readonly id?: string
	/** How many run at once (a number), or how many may start per period (a frequency, `'2 per 5 minutes'`). */
	readonly limit: number | Frequency
	/**
	 * For a frequency limit: `window` (default) counts starts in fixed periods (aligned to the
	 * epoch); `rolling` counts starts in the last period, whenever it ends. A number limit counts
	 * jobs running now either way.
	 */
	readonly mode?: 'window' | 'rolling'
}

/** `concurrency`: a number, a frequency, a config, or a function of the input returning one. */
export type ConcurrencyOption<In = unknown> =
	| number
	| Frequency
	| ConcurrencyConfig
	| ((input: In) => number | Frequency | ConcurrencyConfig)

/** A throttle given as an object. */
export interface ThrottleConfig {
	/** Jobs sharing an id share the throttle. Default: the job's name. */
	readonly id?: string
	/** One trigger per duration (`'1s'`, `1000`), or a frequency (`'3/s'`). */
	readonly duration: Duration | Frequency
	/** `discard` (default): a trigger over the rate is dropped. `queue`: it is delayed until the rate allows it. */
	readonly mode?: 'discard' | 'queue'
}

/** `throttle`: a duration, a frequency, a config, or a function of the input returning one. */
export type ThrottleOption<In = unknown> =
	| Duration
	| Frequency
	| ThrottleConfig
	| ((input: In) => Duration | Frequency | ThrottleConfig)

/** A debounce given as an object. */
export interface DebounceConfig {
	/** Triggers sharing an id are debounced together. Default: the job's name. */
	readonly id?: string
	/** The quiet time before the job runs (a duration, or a frequency read as its period: `'2/s'` = 500 ms). */
	readonly duration: Duration | Frequency
	/**
	 * `trailing` (default): the job waits `duration`; each new trigger replaces its input and
	 * restarts the wait. `leading`: the first trigger runs at once, and triggers within `duration`
	 * after it behave as `trailing`.
	 */
	readonly mode?: 'leading' | 'trailing'
	/** A series of triggers that keeps restarting the wait still runs this long after its first trigger. */
	readonly timeout?: Duration
}

/** `debounce`: a duration, a frequency, a config, or a function of the input returning one. */
export type DebounceOption<In = unknown> =
	| Duration
	| Frequency
	| DebounceConfig
	| ((input: In) => Duration | Frequency | DebounceConfig)

// ---------------------------------------------------------------------------------------------
// Specs, as stored and applied.

/** A concurrency limit resolved for one job. */
export interface ConcurrencySpec {
	readonly key: string
	readonly limit: number
	/** Null: `limit` jobs running at once. A number: `limit` starts per this many ms. */
	readonly windowMs: number | null
	/** With a window: sliding (true) or aligned to the epoch (false). */
	readonly rolling: boolean
}

/** A throttle resolved for one trigger: at most `count` per `perMs`. */
export interface ThrottleSpec {
	readonly key: string
	readonly count: number
	readonly perMs: number
	readonly mode: 'discard' | 'queue'
}

/** A debounce resolved for one trigger. */
export interface DebounceSpec {
	readonly key: string
	readonly delayMs: number
	readonly timeoutMs: number | null
	readonly leading: boolean
}

type Resolver<T> = (input: unknown) => T | null

/** Checks a static option now (definition time); a function is checked each time it is called. */
function resolver<O, T>(
	option: O | ((input: unknown) => O) | undefined,
	what: string,
	resolve: (value: O, what: string) => T,
): Resolver<T> | null {
	if (option === undefined || option === null) return null
	if (typeof option === 'function') {
		const fn = option as (input: unknown) => O
		return (input) => {
			const value = fn(input)
			return value === undefined || value === null ? null : resolve(value, `${what}(input) result`)
		}
	}
	const spec = resolve(option as O, what)
	return () => spec
}

function positiveInt(n: unknown, what: string): number {
	if (!(typeof n === 'number' && Number.isInteger(n) && n >= 1)) {
		throw new ConfigError(`Invalid ${what}: ${JSON.stringify(n)}. Use a whole number >= 1.`)
	}
	return n
}

function checkId(id: unknown, fallback: string, what: string): string {
	if (id === undefined) return fallback
	if (typeof id !== 'string' || id.length === 0 || id.length > 512) {
		throw new ConfigError(`Invalid ${what}.id: ${JSON.stringify(id)}. Use a string of 1 to 512 characters.`)
	}
	return id
}

/** Resolves `concurrency` for a job named `name`. */
export function resolveConcurrency(
	option: ConcurrencyOption | undefined,
	name: string,
	what: string,
): Resolver<ConcurrencySpec> | null {
	return resolver(option, `${what} concurrency`, (value, w) => {
		const config: ConcurrencyConfig =
			typeof value === 'object' ? value : { limit: value as number | Frequency }
		if (typeof config !== 'object' || config === null) throw new ConfigError(`Invalid ${w}.`)
		if (config.mode !== undefined && config.mode !== 'window' && config.mode !== 'rolling') {
			throw new ConfigError(`Invalid ${w}.mode: '${String(config.mode)}'. Use 'window' or 'rolling'.`)
		}
		const key = checkId(config.id, name, w)
		const rolling = config.mode === 'rolling'
		if (typeof config.limit === 'string') {
			const rate = parseFrequency(config.limit, `${w} limit`)
			return { key, limit: rate.count, windowMs: rate.perMs, rolling }
		}
		return { key, limit: positiveInt(config.limit, `${w} limit`), windowMs: null, rolling }
	})
}

/** A duration or frequency as a rate: a duration is one per duration. */
function rateOf(value: Duration | Frequency, what: string): { count: number; perMs: number } {
	if (typeof value === 'string' && isFrequency(value)) return parseFrequency(value, what)
	const ms = parseDuration(value as Duration, what)
	if (ms <= 0) throw new ConfigError(`Invalid ${what}: ${JSON.stringify(value)}. It must be more than 0.`)
	return { count: 1, perMs: ms }
}

/** Resolves `throttle` for a job named `name`. */
export function resolveThrottle(
	option: ThrottleOption | undefined,
	name: string,
	what: string,
): Resolver<ThrottleSpec> | null {
	return resolver(option, `${what} throttle`, (value, w) => {
		const config: ThrottleConfig =
			typeof value === 'object' ? value : { duration: value as Duration | Frequency }
		if (config.mode !== undefined && config.mode !== 'discard' && config.mode !== 'queue') {
			throw new ConfigError(`Invalid ${w}.mode: '${String(config.mode)}'. Use 'discard' or 'queue'.`)
		}
		const rate = rateOf(config.duration, `${w} duration`)
		return { key: checkId(config.id, name, w), ...rate, mode: config.mode ?? 'discard' }
	})
}

/** Resolves `debounce` for a job named `name`. */
export function resolveDebounce(
	option: DebounceOption | undefined,
	name: string,
	what: string,
): Resolver<DebounceSpec> | null {
	return resolver(option, `${what} debounce`, (value, w) => {
		const config: DebounceConfig =
			typeof value === 'object' ? value : { duration: value as Duration | Frequency }
		if (config.mode !== undefined && config.mode !== 'leading' && config.mode !== 'trailing') {
			throw new ConfigError(`Invalid ${w}.mode: '${String(config.mode)}'. Use 'leading' or 'trailing'.`)
		}
		const rate = rateOf(config.duration, `${w} duration`)
		const timeoutMs = config.timeout === undefined ? null : parseDuration(config.timeout, `${w} timeout`)
		return {
			key: checkId(config.id, name, w),
			delayMs: Math.round(rate.perMs / rate.count),
			timeoutMs,
			leading: config.mode === 'leading',
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Decisions. Each takes the key's stored state (null when none) and returns the new state; the
// storage loads and saves it in the same transaction as the job it concerns.

/** Stored state of a concurrency window: recent start times, oldest first. */
export interface WindowState {
	readonly starts: number[]
}

/**
 * Whether a job under a windowed concurrency limit may start now. Returns the new state and, when
 * the window is now full, `until`: the time before which no job of the key can start (storages
 * index it so claims skip a full key without reading its state).
 */
export function admitWindow(
	state: WindowState | null,
	spec: ConcurrencySpec,
	now: number,
): { ok: false } | { ok: true; state: WindowState; until: number | null } {
	const windowMs = spec.windowMs ?? 0
	const since = spec.rolling ? now - windowMs + 1 : now - (now % windowMs)
	const starts = (state?.starts ?? []).filter((t) => t >= since)
	if (starts.length >= spec.limit) return { ok: false }
	starts.push(now)
	const kept = starts.slice(-spec.limit)
	let until: number | null = null
	if (kept.length >= spec.limit) {
		until = spec.rolling ? kept[kept.length - spec.limit]! + windowMs : since + windowMs
	}
	return { ok: true, state: { starts: kept }, until }
}

/** Stored state of a throttle: the times of recent accepted triggers (or scheduled runs), oldest first. */
export interface ThrottleState {
	readonly times: number[]
}

/** Whether a trigger passes the throttle; in `queue` mode, when it may run. */
export function admitThrottle(
	state: ThrottleState | null,
	spec: ThrottleSpec,
	now: number,
	runAt: number,
): { ok: false } | { ok: true; runAt: number; state: ThrottleState } {
	const times = [...(state?.times ?? [])]
	if (spec.mode === 'discard') {
		const recent = times.filter((t) => t > now - spec.perMs)
		if (recent.length >= spec.count) return { ok: false }
		recent.push(now)
		return { ok: true, runAt, state: { times: recent.slice(-spec.count) } }
	}
	// queue: the run may start no sooner than one period after the count-th latest scheduled run.
	let at = runAt
	if (times.length >= spec.count) at = Math.max(at, times[times.length - spec.count]! + spec.perMs)
	times.push(at)
	times.sort((a, b) => a - b)
	return { ok: true, runAt: at, state: { times: times.slice(-spec.count) } }
}

/** Stored state of a debounce. */
export interface DebounceState {
	/** The pending trailing job, if any. */
	readonly jobId: string | null
	/** When the current series of triggers began. */
	readonly firstAt: number
	/** The latest trigger. */
	readonly lastAt: number
}

/** What to do with one debounced trigger. */
export type DebounceDecision =
	/** Replace the pending job's input and move its runAt. */
	| {
			readonly kind: 'replace'
			readonly jobId: string
			readonly runAt: number
			readonly state: DebounceState
	  }
	/** Insert the job at `runAt`. `trailing`: it is the key's pending job from now on. */
	| {
			readonly kind: 'create'
			readonly runAt: number
			readonly trailing: boolean
			readonly state: DebounceState
	  }

/**
 * Decides a debounced trigger. `pendingJob` says whether the job in `state.jobId` is still pending
 * (not started yet); only a pending job can take a new input.
 */
export function decideDebounce(
	state: DebounceState | null,
	pendingJob: boolean,
	spec: DebounceSpec,
	now: number,
): DebounceDecision {
	const cap = (firstAt: number, at: number) =>
		spec.timeoutMs === null ? at : Math.min(at, firstAt + spec.timeoutMs)
	if (state && state.jobId !== null && pendingJob) {
		return {
			kind: 'replace',
			jobId: state.jobId,
			runAt: Math.max(now, cap(state.firstAt, now + spec.delayMs)),
			state: { jobId: state.jobId, firstAt: state.firstAt, lastAt: now },
		}
	}
	const inSeries = state !== null && now - state.lastAt < spec.delayMs
	if (spec.leading && !inSeries) {
		return { kind: 'create', runAt: now, trailing: false, state: { jobId: null, firstAt: now, lastAt: now } }
	}
	const firstAt = inSeries && spec.leading ? state.firstAt : now
	return {
		kind: 'create',
		runAt: Math.max(now, cap(firstAt, now + spec.delayMs)),
		trailing: true,
		state: { jobId: null, firstAt, lastAt: now },
	}
}
