/**
 * encodeJson: plain data takes JSON.stringify's native path, everything else the checked one; both
 * must give the same text as JSON.stringify and refuse what JSON cannot hold faithfully.
 */
import { expect, it } from 'vitest'
import { SerializationError } from '../src/index.js'
import { encodeJson } from '../src/json.js'

function deep(levels: number): unknown {
	let v: unknown = { leaf: [1, 'two', null, true] }
	for (let i = 0; i < levels; i++) v = i % 2 ? { next: v } : [v]
	return v
}

it('encodes what JSON holds exactly as JSON.stringify does', () => {
	const nullProto = Object.assign(Object.create(null) as object, { a: 1, b: [2] })
	class Point {
		constructor(
			readonly x: number,
			readonly y: number,
		) {}
	}
	const values: unknown[] = [
		null,
		true,
		0,
		-1.5e-7,
		'text with "quotes", \\ and \u2028',
		'\ud800 lone surrogate',
		[],
		{},
		{ t: 1733100000000.123, i: 5 },
		{ dropped: undefined, kept: 1 },
		[1, [2, [3, { a: 'b' }]]],
		nullProto,
		new Date(0),
		{ when: new Date(86_400_000) },
		{ custom: { toJSON: () => ({ replaced: true }) } },
		new Map([[1, 2]]),
		new Point(1, 2),
		deep(10),
		deep(40),
	]
	for (const v of values) expect(encodeJson(v, 'x')).toBe(JSON.stringify(v))
})

it('refuses what JSON cannot hold, however deep', () => {
	const cyclic: Record<string, unknown> = { a: [1] }
	;(cyclic.a as unknown[]).push(cyclic)
	const bad: unknown[] = [
		undefined,
		() => 1,
		Symbol('s'),
		10n,
		Number.NaN,
		Number.POSITIVE_INFINITY,
		{ n: Number.NaN },
		[1, undefined],
		new Array(3),
		{ deep: { f: () => 1 } },
		{ s: Symbol('s') },
		{ big: [1n] },
		cyclic,
		{ wrapped: deep(40), bad: Number.NaN },
	]
	for (const v of bad) expect(() => encodeJson(v, 'x'), String(typeof v)).toThrow(SerializationError)
})
