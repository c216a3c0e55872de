/**
 * Triggers: `pipe.into(fn)` and `job.into(fn)` in a job's `trigger` list. A trigger names its
 * source (a job, or a pipe's internal job `spool:pipe:<name>`) and maps the source's value to the
 * target's input. The queue enqueues targets in the same storage transaction as the source's
 * completion, with ids derived from the source job's id, so each event or successful run starts
 * each target exactly once, whatever crashes.
 */

/** A trigger made by `pipe.into(map)` or `job.into(map)`; `T` is the input it gives its target. */
export interface Trigger<T> {
	readonly kind: 'spool.trigger'
	/** The name of the job whose successful runs fire it (a pipe's is `spool:pipe:<name>`). */
	readonly source: string
	/** Maps the source's value (a pipe's data, a job's output) to the target's input. */
	readonly map: ((value: never) => T) | undefined
}

/** Whether a value is a trigger made by `into`. */
export function isTrigger(value: unknown): value is Trigger<unknown> {
	return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'spool.trigger'
}

/** The id of the job a source job's completion starts in `target`: one per source run and target. */
export function triggeredId(sourceId: string, target: string): string {
	return `${sourceId}>${target}`
}
