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
	// The common case, plain data, takes JSON.stringify's native path: a replacer function is called
	// back for every value (several times slower). The result is the same, since the replacer
	// returns plain data unchanged.
	if (isPlain(value, 0)) return JSON.stringify(value) as JsonText
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

/**
 * Whether `value` is plain data the strict replacer would pass unchanged: strings, booleans, null,
 * finite numbers, arrays without undefined, plain objects (prototype Object or none, no toJSON),
 * at most 32 levels deep (deeper, or cyclic, data goes the checked way, which finds cycles).
 */
function isPlain(value: unknown, depth: number): boolean {
	switch (typeof value) {
		case 'string':
		case 'boolean':
			return true
		case 'number':
			return Number.isFinite(value)
		case 'object': {
			if (value === null) return true
			if (depth > 32 || typeof (value as { toJSON?: unknown }).toJSON === 'function') return false
			if (Array.isArray(value)) {
				for (let i = 0; i < value.length; i++) {
					const item: unknown = value[i]
					if (item === undefined || !isPlain(item, depth + 1)) return false
				}
				return true
			}
			const proto: unknown = Object.getPrototypeOf(value)
			if (proto !== Object.prototype && proto !== null) return false
			for (const key in value) {
				const item: unknown = (value as Record<string, unknown>)[key]
				if (item !== undefined && !isPlain(item, depth + 1)) return false
			}
			return true
		}
		default:
			return false
	}
}

/** Encodes an optional output: `undefined` (a handler that returns nothing) is stored as null. */
export function encodeOutput(value: unknown, what: string): JsonText {
	return value === undefined ? ('null' as JsonText) : encodeJson(value, what)
}

/** Decodes JSON text made by `encodeJson`. */
export function decodeJson<T = JsonValue>(text: JsonText | string): T {
	return JSON.parse(text) as T
}
