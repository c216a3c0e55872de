import type { StandardSchemaV1 } from '@standard-schema/spec'
import { ValidationError, type ValidationIssue } from './errors.js'

export type { StandardSchemaV1 }

function pathOf(issue: StandardSchemaV1.Issue): string {
	if (!issue.path || issue.path.length === 0) return ''
	return issue.path
		.map((seg) => {
			const key = typeof seg === 'object' && seg !== null ? seg.key : seg
			return String(key)
		})
		.join('.')
}

/**
 * Validates through the standard-schema interface (zod, valibot, arktype...), never a library's
 * own API. Synchronous validators stay synchronous, so the hot path awaits nothing extra.
 */
export function validate<S extends StandardSchemaV1>(
	schema: S,
	value: unknown,
	what: string,
): StandardSchemaV1.InferOutput<S> | Promise<StandardSchemaV1.InferOutput<S>> {
	const result = schema['~standard'].validate(value)
	if (result instanceof Promise) return result.then((r) => unwrap(r, what))
	return unwrap(result, what)
}

function unwrap<T>(result: StandardSchemaV1.Result<T>, what: string): T {
	if (result.issues) {
		const issues: ValidationIssue[] = result.issues.map((i) => ({ path: pathOf(i), message: i.message }))
		throw new ValidationError(what, issues)
	}
	return result.value
}

/** Whether a value looks like a standard schema. */
export function isStandardSchema(value: unknown): value is StandardSchemaV1 {
	return (
		typeof value === 'object' &&
		value !== null &&
		'~standard' in value &&
		typeof (value as { '~standard': { validate?: unknown } })['~standard'].validate === 'function'
	)
}
