/**
 * The LISTEN side of push wake-ups: one connection that listens on the schema's channel and calls
 * back when jobs were inserted. Notifications that arrive together (in one read from the socket)
 * are coalesced into one call, made at once: no debounce delays the first wake-up. When the
 * connection drops, it says so and reconnects with backoff, then calls back once, since
 * notifications sent meanwhile were missed; the worker's polling covers the gap.
 */
import type pg from 'pg'
import type { Logger } from '../../logger.js'

export class Listener {
	private client: pg.PoolClient | null = null
	private stopped = false
	private scheduled = false
	private backoffMs = 0
	private timer: ReturnType<typeof setTimeout> | null = null
	private connecting = false

	constructor(
		private readonly pool: pg.Pool,
		private readonly channel: string,
		private readonly logger: Logger,
		private readonly onNotify: () => void,
		/** Notifications from these backends (by process id) wake nobody. */
		private readonly ignore: (processId: number) => boolean = () => false,
	) {}

	start(): void {
		this.stopped = false
		void this.connect()
	}

	/**
	 * Calls back once for the notifications that arrive together. pg parses every message of a
	 * chunk read from the socket in one go, so a microtask coalesces a burst without delaying the
	 * first wake-up behind the event loop's other I/O and timers (as a setImmediate would).
	 */
	private onNotification = (msg: pg.Notification): void => {
		if (!this.ignore(msg.processId)) this.fire()
	}

	private fire = (): void => {
		if (this.scheduled || this.stopped) return
		this.scheduled = true
		queueMicrotask(() => {
			this.scheduled = false
			if (!this.stopped) this.onNotify()
		})
	}

	private async connect(): Promise<void> {
		if (this.connecting || this.stopped) return
		this.connecting = true
		let client: pg.PoolClient | null = null
		try {
			client = await this.pool.connect()
			const c = client
			c.on('notification', this.onNotification)
			c.on('error', (err) => this.lost(c, err))
			c.on('end', () => this.lost(c, new Error('the connection ended')))
			await c.query(`LISTEN "${this.channel}"`)
			if (this.stopped) {
				c.release(true)
				return
			}
			if (this.backoffMs > 0)
				this.logger.warn({ channel: this.channel }, 'spool: PostgreSQL listener reconnected.')
			this.client = c
			this.backoffMs = 0
			// Anything sent while the connection was down was missed: look once.
			this.fire()
		} catch (err) {
			client?.release(true)
			this.retry(err)
		} finally {
			this.connecting = false
		}
	}

	private lost(client: pg.PoolClient, err: unknown): void {
		if (this.client !== client) return
		this.client = null
		try {
			client.release(true)
		} catch {
			// Released already.
		}
		if (!this.stopped) this.retry(err)
	}

	private retry(err: unknown): void {
		if (this.stopped || this.timer) return
		this.backoffMs = Math.min(5000, this.backoffMs ? this.backoffMs * 2 : 100)
		this.logger.warn(
			{ err, retryInMs: this.backoffMs },
			`spool: PostgreSQL listener connection lost (${(err as Error)?.message ?? String(err)}); reconnecting. Polling covers the gap.`,
		)
		this.timer = setTimeout(() => {
			this.timer = null
			void this.connect()
		}, this.backoffMs)
		this.timer.unref()
	}

	stop(): void {
		this.stopped = true
		if (this.timer) clearTimeout(this.timer)
		this.timer = null
		const c = this.client
		this.client = null
		// Destroy rather than return a connection that LISTENs to the pool.
		c?.release(true)
	}
}
