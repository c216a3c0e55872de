/**
 * A min-priority queue: a binary min-heap plus a sorted run. The memory storage keeps two per job
 * name (due jobs in claim order, later jobs by time), so a claim is O(log n) however many jobs
 * wait, and O(1) in the common case: jobs enqueued in the order they are claimed in (same
 * priority, `runAt` now) are appended to the run and taken from its head, without sifting through
 * a deep heap (whose every level is a cache miss once a few hundred thousand jobs wait).
 */
export class MinHeap<T> {
	/** Items that came out of order: a binary heap. */
	private readonly items: T[] = []
	/** Items that came in order: sorted, the live ones from `head` on. */
	private run: (T | undefined)[] = []
	private head = 0
	constructor(private readonly less: (a: T, b: T) => boolean) {}

	get size(): number {
		return this.items.length + this.run.length - this.head
	}

	peek(): T | undefined {
		const a = this.run[this.head]
		const b = this.items[0]
		if (a === undefined) return b
		if (b === undefined) return a
		return this.less(b, a) ? b : a
	}

	push(item: T): void {
		const run = this.run
		const last = run.length > this.head ? run[run.length - 1] : undefined
		if (last === undefined || !this.less(item, last)) {
			run.push(item)
			return
		}
		this.pushHeap(item)
	}

	pop(): T | undefined {
		const a = this.run[this.head]
		const b = this.items[0]
		if (a !== undefined && (b === undefined || !this.less(b, a))) {
			this.run[this.head++] = undefined
			this.compact()
			return a
		}
		return this.popHeap()
	}

	/** Drops the run's taken slots: all of them when it is empty, else now and then (amortised O(1)). */
	private compact(): void {
		const head = this.head
		if (head === this.run.length) {
			this.run = []
			this.head = 0
		} else if (head >= 1024 && head * 2 >= this.run.length) {
			this.run = this.run.slice(head)
			this.head = 0
		}
	}

	private pushHeap(item: T): void {
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

	private popHeap(): T | undefined {
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
