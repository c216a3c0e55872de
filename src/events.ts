/**
 * A small typed event emitter. Unlike node:events, an 'error' event with no listener does not
 * throw, and a listener that throws is reported to `onListenerError` instead of breaking the
 * emitter's caller (the worker).
 */
export type Listener<T, Meta = undefined> = (payload: T, meta: Meta) => void

/** Subscribe and unsubscribe to a typed event map. */
export interface Emitter<Events extends object, Meta = undefined> {
	/** Adds a listener; returns a function that removes it. */
	on<K extends keyof Events>(event: K, listener: Listener<Events[K], Meta>): () => void
	/** Adds a listener called once. */
	once<K extends keyof Events>(event: K, listener: Listener<Events[K], Meta>): () => void
	/** Removes a listener. */
	off<K extends keyof Events>(event: K, listener: Listener<Events[K], Meta>): void
}

/** The implementation the queue owns; it alone emits. */
export class TypedEmitter<Events extends object, Meta = undefined> implements Emitter<Events, Meta> {
	private readonly listeners = new Map<keyof Events, Set<Listener<never, Meta>>>()

	constructor(private readonly onListenerError: (error: unknown, event: string) => void) {}

	on<K extends keyof Events>(event: K, listener: Listener<Events[K], Meta>): () => void {
		let set = this.listeners.get(event)
		if (!set) {
			set = new Set()
			this.listeners.set(event, set)
		}
		set.add(listener as Listener<never, Meta>)
		return () => this.off(event, listener)
	}

	once<K extends keyof Events>(event: K, listener: Listener<Events[K], Meta>): () => void {
		const off = this.on(event, (payload, meta) => {
			off()
			listener(payload, meta)
		})
		return off
	}

	off<K extends keyof Events>(event: K, listener: Listener<Events[K], Meta>): void {
		this.listeners.get(event)?.delete(listener as Listener<never, Meta>)
	}

	/** Whether anyone listens: lets the hot path skip building payloads nobody reads. */
	has(event: keyof Events): boolean {
		const set = this.listeners.get(event)
		return set !== undefined && set.size > 0
	}

	emit<K extends keyof Events>(event: K, payload: Events[K], meta: Meta): void {
		const set = this.listeners.get(event)
		if (!set || set.size === 0) return
		for (const listener of [...set]) {
			try {
				;(listener as Listener<Events[K], Meta>)(payload, meta)
			} catch (err) {
				this.onListenerError(err, String(event))
			}
		}
	}
}
