/**
 * `spool/dashboard`: a JSON API and a web UI over a queue, as a node:http handler
 * (`createDashboard`) or a server of its own (`serveDashboard`).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ConfigError } from '../errors.js'
import { createDashboard, type DashboardHandler, type DashboardOptions } from './handler.js'

export {
	createDashboard,
	type DashboardHandler,
	type DashboardOptions,
	type DashboardQueue,
} from './handler.js'
export type * from './types.js'

/** Options of serveDashboard. */
export interface ServeDashboardOptions extends Omit<DashboardOptions, 'basePath'> {
	/** The port; 0 picks a free one. Default 4300. */
	readonly port?: number
	/** The address to bind. Default `127.0.0.1`: reachable from this machine only. */
	readonly host?: string
}

/** A running dashboard server. */
export interface DashboardServer {
	/** Its address, e.g. `http://127.0.0.1:4300/`. */
	readonly url: string
	/** The port it listens on. */
	readonly port: number
	/** Stops the server (open connections are closed). */
	close(): Promise<void>
}

/**
 * Serves the dashboard on its own HTTP server, bound to 127.0.0.1 unless told otherwise.
 *
 * ```ts
 * const { url } = await serveDashboard({ queue, port: 4300, token: process.env.SPOOL_TOKEN })
 * console.log(`dashboard: ${url}`)
 * ```
 */
export async function serveDashboard(options: ServeDashboardOptions): Promise<DashboardServer> {
	const port = options.port ?? 4300
	if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) {
		throw new ConfigError(`port must be a whole number from 0 to 65535, got ${port}.`)
	}
	const host = options.host ?? '127.0.0.1'
	const handler: DashboardHandler = createDashboard(options)
	const server = createServer(handler)
	server.keepAliveTimeout = 5_000
	await new Promise<void>((resolve, reject) => {
		server.once('error', reject)
		server.listen(port, host, () => {
			server.off('error', reject)
			resolve()
		})
	})
	const actual = (server.address() as AddressInfo).port
	const shown = host.includes(':') ? `[${host}]` : host
	return {
		url: `http://${shown === '0.0.0.0' ? '127.0.0.1' : shown}:${actual}/`,
		port: actual,
		close: () =>
			new Promise<void>((resolve) => {
				handler.close()
				server.close(() => resolve())
				server.closeAllConnections()
			}),
	}
}
