/**
 * `spool/metrics`: Prometheus metrics of a queue (prom-client) and OpenTelemetry spans of its
 * enqueues and attempts (through `@opentelemetry/api`: no-ops unless the application registers an
 * SDK).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { QueueEvents } from '../queue.js'
import { JOB_STATUSES, type QueueStats } from '../storage/contract.js'

export { type QueueTracing, traceQueue } from './tracing.js'

/** What metrics need of a queue; every `Queue` has it. */
export interface MetricsQueue {
	getStats(name?: string): Promise<QueueStats>
	on<K extends keyof QueueEvents>(event: K, listener: (payload: QueueEvents[K]) => void): () => void
}

/** Options of createMetrics. */
export interface MetricsOptions {
	readonly queue: MetricsQueue
	/** The registry to register in. Default: a new one (not prom-client's global registry). */
	readonly registry?: Registry
	/** The prefix of every metric name. Default `spool_`. */
	readonly prefix?: string
	/** Labels added to every metric, e.g. `{ service: 'api' }`. */
	readonly labels?: Readonly<Record<string, string>>
}

/** A queue's metrics. */
export interface QueueMetrics {
	/** The registry; serve `await registry.metrics()` with `registry.contentType`. */
	readonly registry: Registry
	/** Stops listening to the queue (the metrics stay registered). */
	close(): void
}

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600]

/**
 * Registers a queue's metrics:
 *
 * - `spool_jobs{name,state}`: jobs by state, read from the storage at each scrape;
 * - `spool_jobs_enqueued_total{name}`, `spool_attempts_total{name,outcome}` (completed, retried,
 *   dead, cancelled): throughput, counted in this process;
 * - `spool_attempt_duration_seconds{name,outcome}`: how long attempts ran;
 * - `spool_queue_latency_seconds{name}`: from when a job was due to when an attempt started.
 *
 * ```ts
 * const { registry } = createMetrics({ queue })
 * app.get('/metrics', async (_req, res) => res.type(registry.contentType).send(await registry.metrics()))
 * ```
 */
export function createMetrics(options: MetricsOptions): QueueMetrics {
	const { queue } = options
	const registry = options.registry ?? new Registry()
	const p = options.prefix ?? 'spool_'
	if (options.labels) registry.setDefaultLabels({ ...options.labels })

	new Gauge({
		name: `${p}jobs`,
		help: 'Jobs in the storage, by job name and state.',
		labelNames: ['name', 'state'],
		registers: [registry],
		async collect() {
			const stats = await queue.getStats()
			this.reset()
			for (const [name, counts] of Object.entries(stats.byName)) {
				for (const state of JOB_STATUSES) this.set({ name, state }, counts[state])
			}
		},
	})
	const enqueued = new Counter({
		name: `${p}jobs_enqueued_total`,
		help: 'Jobs enqueued by this process.',
		labelNames: ['name'],
		registers: [registry],
	})
	const attempts = new Counter({
		name: `${p}attempts_total`,
		help: 'Attempts this process finished, by outcome: completed, retried, dead, cancelled.',
		labelNames: ['name', 'outcome'],
		registers: [registry],
	})
	const duration = new Histogram({
		name: `${p}attempt_duration_seconds`,
		help: 'How long attempts ran, by outcome.',
		labelNames: ['name', 'outcome'],
		buckets: DURATION_BUCKETS,
		registers: [registry],
	})
	const latency = new Histogram({
		name: `${p}queue_latency_seconds`,
		help: 'From when a job was due to when its attempt started.',
		labelNames: ['name'],
		buckets: LATENCY_BUCKETS,
		registers: [registry],
	})

	const startedAt = new Map<string, number>()
	const finish = (id: string, name: string, outcome: string, durationMs?: number) => {
		attempts.inc({ name, outcome })
		const start = startedAt.get(id)
		startedAt.delete(id)
		const ms = durationMs ?? (start === undefined ? undefined : performance.now() - start)
		if (ms !== undefined) duration.observe({ name, outcome }, ms / 1000)
	}
	const off = [
		queue.on('enqueued', (e) => enqueued.inc({ name: e.name })),
		queue.on('started', (e) => {
			startedAt.set(e.id, performance.now())
			latency.observe({ name: e.name }, Math.max(0, e.startedAt.getTime() - e.runAt.getTime()) / 1000)
		}),
		queue.on('completed', (e) => finish(e.id, e.name, 'completed', e.durationMs)),
		queue.on('failed', (e) => finish(e.id, e.name, e.retryAt ? 'retried' : 'dead')),
		queue.on('cancelled', (e) => {
			if (startedAt.has(e.id)) finish(e.id, e.name, 'cancelled')
		}),
		queue.on('leaseLost', (e) => startedAt.delete(e.id)),
	]
	return {
		registry,
		close() {
			for (const f of off) f()
			startedAt.clear()
		},
	}
}
