/** Item 1 of issue 5: one parser for durations and frequencies, errors quoting the bad text at definition time. */
import { expect, it } from 'vitest'
import { ConfigError, createJob, parseDuration, parseFrequency } from '../../src/index.js'

it('parses durations and frequencies', () => {
	expect(
		['250ms', '3s', '5m', '1h', '2d', 1500, '1.5s', '2 minutes'].map((d) => parseDuration(d as never)),
	).toEqual([250, 3000, 300_000, 3_600_000, 172_800_000, 1500, 1500, 120_000])
	expect(parseFrequency('3/s')).toEqual({ count: 3, perMs: 1000 })
	expect(parseFrequency('10/m')).toEqual({ count: 10, perMs: 60_000 })
	expect(parseFrequency('1 per second')).toEqual({ count: 1, perMs: 1000 })
	expect(parseFrequency('2 per 5 minutes')).toEqual({ count: 2, perMs: 300_000 })
	expect(parseFrequency('5/10s')).toEqual({ count: 5, perMs: 10_000 })
})

it('refuses anything else with a ConfigError quoting it', () => {
	for (const bad of ['5 parsecs', 'soon', '', '-1s']) {
		expect(() => parseDuration(bad as never)).toThrow(new RegExp(`'${bad}'`))
	}
	expect(() => parseDuration(-5)).toThrow(ConfigError)
	for (const bad of ['3 per fortnight', '0/s', 'fast']) {
		expect(() => parseFrequency(bad as never)).toThrow(new RegExp(`'${bad}'`))
	}
})

it('checks flow options when the job is defined, not when it runs', () => {
	const handler = async () => {}
	expect(() => createJob({ name: 'a', throttle: '3 per fortnight' as never }, handler)).toThrow(
		/'3 per fortnight'/,
	)
	expect(() => createJob({ name: 'b', concurrency: '2 per 5 eons' as never }, handler)).toThrow(
		/'2 per 5 eons'/,
	)
	expect(() => createJob({ name: 'c', concurrency: 0 }, handler)).toThrow(ConfigError)
	expect(() =>
		createJob({ name: 'd', debounce: { duration: '1s', timeout: 'later' as never } }, handler),
	).toThrow(/'later'/)
	expect(() =>
		createJob({ name: 'e', throttle: { duration: '1s', mode: 'drop' as never } }, handler),
	).toThrow(/'drop'/)
	expect(() => createJob({ name: 'f', backoff: { initial: 'quick' as never } }, handler)).toThrow(/'quick'/)
	expect(() => createJob({ name: 'g', cron: { pattern: '* * * * *', catchUp: -1 } }, handler)).toThrow(
		ConfigError,
	)
	expect(() =>
		createJob(
			{ name: 'h', throttle: '1 per second', debounce: '2s', concurrency: { limit: '2/m', mode: 'rolling' } },
			handler,
		),
	).not.toThrow()
})
