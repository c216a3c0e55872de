/**
 * The logger spool writes to. pino's and bunyan's loggers fit as they are (an object of fields
 * first, then the message); so does `console` through `consoleLogger()`.
 */
export interface Logger {
	debug(fields: Record<string, unknown>, message: string): void
	info(fields: Record<string, unknown>, message: string): void
	warn(fields: Record<string, unknown>, message: string): void
	error(fields: Record<string, unknown>, message: string): void
}

/** Levels in order; a console logger prints its level and those above. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

/** A logger that writes one line per entry to stderr. The default prints warnings and errors. */
export function consoleLogger(level: LogLevel = 'warn'): Logger {
	const min = ORDER[level]
	const write = (lvl: Exclude<LogLevel, 'silent'>) => (fields: Record<string, unknown>, message: string) => {
		if (ORDER[lvl] < min) return
		const extra = Object.keys(fields).length ? ` ${safeJson(fields)}` : ''
		process.stderr.write(`spool ${lvl}: ${message}${extra}\n`)
	}
	return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') }
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }

function safeJson(value: unknown): string {
	try {
		return JSON.stringify(value, (_k, v) =>
			v instanceof Error ? { name: v.name, message: v.message } : typeof v === 'bigint' ? String(v) : v,
		)
	} catch {
		return '[unserialisable fields]'
	}
}
