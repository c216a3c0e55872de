/**
 * The memory storage's claim queue (MinHeap: a binary heap plus a sorted run for in-order pushes)
 * against a sorted array, over seeded random mixes of in-order and out-of-order pushes and pops.
 */
import { describe, expect, it } from 'vitest'
import { MinHeap } from '../src/storage/heap.js'

interface Item {
	readonly priority: number
	readonly seq: number
}

const less = (a: Item, b: Item) => (a.priority !== b.priority ? a.priority < b.priority : a.seq < b.seq)

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
	let a = seed
	return () => {
		a = (a + 0x6d2b79f5) | 0
		let t = Math.imul(a ^ (a >>> 15), 1 | a)
		t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296
	}
}

describe('MinHeap', () => {
	for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
		it(`pops in order whatever the order of pushes (seed ${seed})`, () => {
			const random = rng(seed)
			const heap = new MinHeap<Item>(less)
			const reference: Item[] = []
			let seq = 0
			// Mostly in order (same priority, rising seq) with some higher and lower priorities mixed in.
			for (let step = 0; step < 5000; step++) {
				const r = random()
				if (r < 0.6) {
					const priority = random() < 0.8 ? 0 : Math.floor(random() * 5) - 2
					const item = { priority, seq: seq++ }
					heap.push(item)
					reference.push(item)
				} else if (r < 0.95) {
					reference.sort((a, b) => (less(a, b) ? -1 : less(b, a) ? 1 : 0))
					expect(heap.peek()).toBe(reference[0])
					expect(heap.pop()).toBe(reference.shift())
				} else {
					// Re-push a popped-and-skipped item (the claim puts back jobs it could not take).
					const top = heap.pop()
					if (top) heap.push(top)
				}
				expect(heap.size).toBe(reference.length)
			}
			reference.sort((a, b) => (less(a, b) ? -1 : less(b, a) ? 1 : 0))
			const rest: Item[] = []
			for (let top = heap.pop(); top; top = heap.pop()) rest.push(top)
			expect(rest).toEqual(reference)
			expect(heap.size).toBe(0)
			expect(heap.peek()).toBeUndefined()
		})
	}

	it('takes a long in-order run from its head and lets go of what it took', () => {
		const heap = new MinHeap<Item>(less)
		for (let i = 0; i < 10_000; i++) heap.push({ priority: 0, seq: i })
		for (let i = 0; i < 9_999; i++) expect(heap.pop()?.seq).toBe(i)
		expect(heap.size).toBe(1)
		heap.push({ priority: -1, seq: 10_000 })
		expect(heap.pop()?.seq).toBe(10_000)
		expect(heap.pop()?.seq).toBe(9_999)
		expect(heap.pop()).toBeUndefined()
	})
})
