/**
 * What `spool` prints: tables for people, a progress bar for long operations (on stderr, only on a
 * terminal), and the exit codes.
 */

/** What each exit code of `spool` means. */
export const EXIT = {
	/** Done. */
	ok: 0,
	/** Something failed (the storage, a job file, an unexpected error). */
	failure: 1,
	/** Bad usage: an unknown command or option, a bad value, bad JSON. */
	usage: 2,
	/** What was asked for does not exist (no such job, not dead, nothing to replay). */
	notFound: 3,
	/** The storage could not be reached or opened. */
	storage: 4,
	/** Stopped by a second Ctrl-C. */
	interrupted: 130,
} as const

/** Formats rows as an aligned text table with a header. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
	const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
	const line = (cells: readonly string[]) =>
		cells
			.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
			.join('  ')
			.trimEnd()
	return [line(headers), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n')
}

/** Shortens text to `max` characters on one line. */
export function clip(text: string, max: number): string {
	const one = text.replace(/\s+/g, ' ')
	return one.length > max ? `${one.slice(0, max - 1)}…` : one
}

/** A progress bar on stderr, drawn only when stderr is a terminal. */
export interface Progress {
	/** Sets how much is done (and the total, when it became known). */
	update(done: number, total?: number): void
	/** Clears the bar. */
	done(): void
}

/** Starts a progress bar labelled `label`; `total` may be unknown (null). */
export function progress(label: string, total: number | null, stream = process.stderr): Progress {
	const tty = stream.isTTY === true
	let last = 0
	let t = total
	const draw = (done: number) => {
		if (!tty) return
		const now = Date.now()
		if (now - last < 50 && done !== t) return
		last = now
		if (t && t > 0) {
			const width = 30
			const filled = Math.min(width, Math.round((done / t) * width))
			stream.write(`\r${label} [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${done}/${t} `)
		} else {
			stream.write(`\r${label} ${done} `)
		}
	}
	draw(0)
	return {
		update(done, newTotal) {
			if (newTotal !== undefined) t = newTotal
			draw(done)
		},
		done() {
			if (tty) stream.write('\r\x1b[2K')
		},
	}
}
