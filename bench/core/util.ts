/**
 * Small helpers shared by the core benchmarks: temporary files, percentiles, the printed table.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** One measured number of one system. */
export interface Measurement {
	/** What was measured, e.g. `process c10`. */
	readonly scenario: string
	/** Who was measured, e.g. `spool sqlite`, `raw sqlite`, `bullmq`. */
	readonly system: string
	readonly value: number
	/** `jobs/s` or `ms`. */
	readonly unit: 'jobs/s' | 'ms'
	/** How many jobs the number comes from. */
	readonly jobs: number
}

/** A fresh folder for database files, removed by `cleanup`. */
export function tempDir(): { path: (name: string) => string; cleanup: () => void } {
	const dir = mkdtempSync(join(tmpdir(), 'spool-bench-'))
	return { path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** The p-th percentile (0..100) of samples, nearest rank. */
export function percentile(samples: readonly number[], p: number): number {
	if (samples.length === 0) return Number.NaN
	const sorted = [...samples].sort((a, b) => a - b)
	const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
	return sorted[rank]!
}

/** Jobs per second of `jobs` done in `ms`. */
export function rate(jobs: number, ms: number): number {
	return (jobs * 1000) / ms
}

/** Runs the garbage collector when node was started with --expose-gc. */
export function gc(): void {
	;(globalThis as { gc?: () => void }).gc?.()
}

/** Formats a number for the table: rates as whole numbers, latencies with three decimals. */
export function fmt(value: number, unit: 'jobs/s' | 'ms'): string {
	if (!Number.isFinite(value)) return '-'
	return unit === 'ms' ? value.toFixed(3) : Math.round(value).toLocaleString('en-US')
}

/** A plain text table with the first column left-aligned and the others right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
	const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
	const line = (cells: readonly string[]) =>
		cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
	return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}
