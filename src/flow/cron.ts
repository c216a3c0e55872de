/**
 * Cron: jobs with a `cron` option are enqueued on schedule by every worker process; each tick is
 * inserted with a tick guard (`NewJob.tick`), so exactly one process's insert wins per tick, even
 * after restarts and after the job's row is pruned. Ticks come from a `CronScheduler`: croner by
 * default, or the user's own (`createQueue({ cronScheduler })`).
 */
import { Cron } from 'croner'
import { ConfigError } from '../errors.js'

/** Computes schedule ticks. Supply your own to `createQueue({ cronScheduler })`. */
export interface CronScheduler {
	/**
	 * The first tick strictly after `after`, or null when the schedule has none. Throws on a bad
	 * pattern or timezone (the queue reports it as a ConfigError at createQueue).
	 */
	next(pattern: string, after: Date, timezone?: string): Date | null
}

/** A schedule given as an object. */
export interface CronConfig<In = unknown> {
	/** A cron pattern: five fields (minutes), six (seconds) or seven (years). */
	readonly pattern: string
	/** An IANA timezone such as `'Europe/Paris'`. Default: the process's. */
	readonly timezone?: string
	/**
	 * After downtime, enqueue the ticks missed since the last one enqueued: `true` for all of
	 * them, a number for at most that many (the latest). Default false: resume at the next tick.
	 */
	readonly catchUp?: boolean | number
	/** The input of each scheduled run. Default none. */
	readonly input?: In
}

/** `cron`: a pattern, or a config. */
export type CronOption<In = unknown> = string | CronConfig<In>

/** A checked schedule. */
export interface ResolvedCron {
	readonly pattern: string
	readonly timezone: string | undefined
	/** How many missed ticks to enqueue after downtime (0: none). */
	readonly catchUp: number
	readonly input: unknown
}

/** Checks a `cron` option's shape at definition time; createQueue checks the pattern with its scheduler. */
export function resolveCronOption(option: CronOption, what: string): ResolvedCron {
	const config: CronConfig = typeof option === 'string' ? { pattern: option } : option
	if (
		typeof config !== 'object' ||
		config === null ||
		typeof config.pattern !== 'string' ||
		!config.pattern.trim()
	) {
		throw new ConfigError(
			`${what}: 'cron' must be a pattern such as '*/5 * * * *', or { pattern, timezone }.`,
		)
	}
	const c = config.catchUp ?? false
	if (!(typeof c === 'boolean' || (Number.isInteger(c) && c >= 0))) {
		throw new ConfigError(
			`${what}: cron.catchUp must be true, false or a whole number, got ${JSON.stringify(c)}.`,
		)
	}
	return {
		pattern: config.pattern,
		timezone: config.timezone,
		catchUp: c === true ? Number.POSITIVE_INFINITY : c === false ? 0 : c,
		input: config.input === undefined ? null : config.input,
	}
}

/** Asks the scheduler for one tick, turning its complaint into a ConfigError quoting the pattern. */
export function checkSchedule(scheduler: CronScheduler, cron: ResolvedCron, what: string): void {
	try {
		scheduler.next(cron.pattern, new Date(0), cron.timezone)
	} catch (err) {
		throw new ConfigError(
			`${what}: invalid cron '${cron.pattern}'${cron.timezone ? ` (timezone '${cron.timezone}')` : ''}: ${(err as Error).message}`,
		)
	}
}

/** The default scheduler, on croner. */
export const cronerScheduler: CronScheduler = {
	next(pattern, after, timezone) {
		return new Cron(pattern, { timezone, paused: true }).nextRun(after)
	},
}
