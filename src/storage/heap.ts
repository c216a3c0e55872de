/**
 * A binary min-heap. The memory storage keeps one per job name, ordered by claim order, so a claim
 * is O(log n) however many jobs wait.
 */
export class MinHeap<T> {
	private readonly items: T[] = []
	constructor(private readonly less: (a: T, b: T) => boolean) {}

	get size(): number {
		return this.items.length
	}

	peek(): T | undefined {
		return this.items[0]
	}

	push(item: T): void {
		const items = this.items
		items.push(item)
		let i = items.length - 1
		while (i > 0) {
			const parent = (i - 1) >> 1
			if (!this.less(items[i]!, items[parent]!)) break
			const tmp = items[i]!
			items[i] = items[parent]!
			items[parent] = tmp
			i = parent
		}
	}

	pop(): T | undefined {
		const items = this.items
		const top = items[0]
		const last = items.pop()
		if (items.length > 0 && last !== undefined) {
			items[0] = last
			let i = 0
			const n = items.length
			for (;;) {
				const l = 2 * i + 1
				const r = l + 1
				let m = i
				if (l < n && this.less(items[l]!, items[m]!)) m = l
				if (r < n && this.less(items[r]!, items[m]!)) m = r
				if (m === i) break
				const tmp = items[i]!
				items[i] = items[m]!
				items[m] = tmp
				i = m
			}
		}
		return top
	}
}
