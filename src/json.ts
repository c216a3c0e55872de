import { SerializationError } from './errors.js'

/** A value JSON can hold. Job inputs and outputs are JSON. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

/** JSON text, as stored. Made only by `encodeJson`. */
export type JsonText = string & { readonly __json: unique symbol }

function strictReplacer(this: unknown, key: string, value: unknown): unknown {
	switch (typeof value) {
		case 'function':
		case 'symbol':
			throw new SerializationError(
				`${describe(key)} is a ${typeof value}, which JSON cannot hold. Job data must be plain JSON: pass data, not code.`,
			)
		case 'bigint':
			throw new SerializationError(
				`${describe(key)} is a BigInt, which JSON cannot hold. Convert it to a string or number first.`,
			)
		case 'number':
			if (!Number.isFinite(value)) {
				throw new SerializationError(
					`${describe(key)} is ${value}, which JSON cannot hold (it would become null). Use a finite number or null.`,
				)
			}
			return value
		case 'undefined':
			// Dropped from objects by JSON like an absent key; in arrays JSON writes null, which would
			// change the data, so refuse it there.
			if (Array.isArray(this)) {
				throw new SerializationError(
					`${describe(key)} is undefined inside an array, which JSON would turn into null. Use null.`,
				)
			}
			return value
		default:
			return value
	}
}

function describe(key: string): string {
	return key === '' ? 'The value' : `The value at key '${key}'`
}

/**
 * Encodes a value as JSON text, refusing what JSON cannot hold faithfully: functions, symbols,
 * BigInts, cycles, non-finite numbers, and `undefined` at the top level or in arrays.
 */
export function encodeJson(value: unknown, what: string): JsonText {
	if (value === undefined) {
		throw new SerializationError(`${what} is undefined, which JSON cannot hold. Pass null or an object.`)
	}
	let text: string | undefined
	try {
		text = JSON.stringify(value, strictReplacer)
	} catch (err) {
		if (err instanceof SerializationError) {
			throw new SerializationError(`${what}: ${err.message}`)
		}
		const cycle = err instanceof TypeError && /circular/i.test(err.message)
		throw new SerializationError(
			cycle
				? `${what} contains a cycle (an object that refers to itself), which JSON cannot hold.`
				: `${what} cannot be encoded as JSON: ${(err as Error).message}`,
			{ cause: err },
		)
	}
	if (text === undefined) {
		throw new SerializationError(`${what} cannot be encoded as JSON.`)
	}
	return text as JsonText
}

/** Encodes an optional output: `undefined` (a handler that returns nothing) is stored as null. */
export function encodeOutput(value: unknown, what: string): JsonText {
	return value === undefined ? ('null' as JsonText) : encodeJson(value, what)
}

/** Decodes JSON text made by `encodeJson`. */
export function decodeJson<T = JsonValue>(text: JsonText | string): T {
	return JSON.parse(text) as T
}
