/** Job ids: 26 lower-case base32 characters, time first, strictly increasing within a process. */
import { expect, it } from 'vitest'
import { createIdGenerator } from '../src/id.js'

it('makes distinct, ordered ids whose first 10 characters encode the time', () => {
	const nextId = createIdGenerator()
	const before = Date.now()
	const ids = Array.from({ length: 5_000 }, () => nextId())
	const after = Date.now()
	for (const id of ids) expect(id).toMatch(/^[0-9a-hjkmnp-tv-z]{26}$/)
	expect(new Set(ids).size).toBe(ids.length)
	expect([...ids].sort()).toEqual(ids)
	const decode = (id: string) =>
		[...id.slice(0, 10)].reduce((t, c) => t * 32 + '0123456789abcdefghjkmnpqrstvwxyz'.indexOf(c), 0)
	expect(decode(ids[0]!)).toBeGreaterThanOrEqual(before)
	expect(decode(ids.at(-1)!)).toBeLessThanOrEqual(after)
})
