import { ConfigError } from '../errors.js'
import { type Duration, parseDuration } from '../time.js'

/** How long to wait before retry number `attempt` (1 = the first retry). */
export type BackoffFunction<In = unknown> = (attempt: number, input: In) => number | Duration

/** Exponential backoff: `initial * factor^(attempt-1)`, capped at `max`, randomised by `jitter`. */
export interface BackoffConfig {
	/** The wait before the first retry. */
	readonly initial: Duration
	/** The longest wait. Default one hour. */
	readonly max?: Duration
	/** The multiplier from one wait to the next. Default 2. */
	readonly factor?: number
	/** The largest fraction by which a wait is randomly shortened or lengthened (0 to 1). Default 0. */
	readonly jitter?: number
	/** Stop retrying after this many retries, whatever `retry` says. Default no limit. */
	readonly attempts?: number
}

/**
 * A retry policy: a fixed wait, a config, a list of waits (the last one repeats), or a function
 * of the attempt and the input.
 */
export type BackoffOption<In = unknown> = Duration | BackoffConfig | readonly Duration[] | BackoffFunction<In>

/** Seed 002's formula as the default: 1s, 2s, 4s... capped at one hour, ±20% jitter. */
export const DEFAULT_BACKOFF: BackoffConfig = { initial: '1s', factor: 2, max: '1h', jitter: 0.2 }

/** A backoff option checked and turned into a function, once, at definition time. */
export interface ResolvedBackoff<In = unknown> {
	/** Milliseconds to wait before retry `attempt` (1-based). */
	delay(attempt: number, input: In, random?: () => number): number
	/** The most retries this policy allows, if it caps them. */
	readonly maxRetries: number | undefined
}

/** Checks a backoff option and returns its delay function. Throws ConfigError on a bad option. */
export function resolveBackoff<In>(option: BackoffOption<In> | undefined, what: string): ResolvedBackoff<In> {
	const opt = option ?? DEFAULT_BACKOFF
	if (typeof opt === 'function') {
		return {
			maxRetries: undefined,
			delay: (attempt, input) => parseDuration(opt(attempt, input), `${what} backoff result`),
		}
	}
	if (typeof opt === 'number' || typeof opt === 'string') {
		const ms = parseDuration(opt, `${what} backoff`)
		return { maxRetries: undefined, delay: () => ms }
	}
	if (Array.isArray(opt)) {
		if (opt.length === 0) throw new ConfigError(`${what} backoff: the list of waits is empty.`)
		const list = (opt as readonly Duration[]).map((d) => parseDuration(d, `${what} backoff`))
		return { maxRetries: undefined, delay: (attempt) => list[Math.min(attempt, list.length) - 1]! }
	}
	const config = opt as BackoffConfig
	const initial = parseDuration(config.initial, `${what} backoff.initial`)
	const max = parseDuration(config.max ?? '1h', `${what} backoff.max`)
	const factor = config.factor ?? 2
	const jitter = config.jitter ?? 0
	if (!(factor >= 1)) throw new ConfigError(`${what} backoff.factor must be >= 1, got ${factor}.`)
	if (!(jitter >= 0 && jitter <= 1))
		throw new ConfigError(`${what} backoff.jitter must be in [0, 1], got ${jitter}.`)
	if (config.attempts !== undefined && !(Number.isInteger(config.attempts) && config.attempts >= 0)) {
		throw new ConfigError(`${what} backoff.attempts must be a whole number >= 0, got ${config.attempts}.`)
	}
	return {
		maxRetries: config.attempts,
		delay(attempt, _input, random = Math.random) {
			const base = Math.min(max, initial * factor ** Math.max(0, attempt - 1))
			const spread = jitter === 0 ? 1 : 1 + jitter * (2 * random() - 1)
			return Math.max(0, Math.round(Math.min(max, base * spread)))
		},
	}
}
