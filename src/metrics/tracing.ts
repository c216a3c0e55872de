/**
 * OpenTelemetry spans of a queue through `@opentelemetry/api`: one span per enqueue and one per
 * attempt. Without an SDK registered by the application, the API's tracer is a no-op.
 */
import { type Span, SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api'
import type { QueueEvents } from '../queue.js'

/** What tracing needs of a queue; every `Queue` has it. */
export interface TracingQueue {
	on<K extends keyof QueueEvents>(event: K, listener: (payload: QueueEvents[K]) => void): () => void
}

/** A queue's tracing; `close()` stops it (open attempt spans end as interrupted). */
export interface QueueTracing {
	close(): void
}

/**
 * Records spans of a queue's work: `spool.enqueue <name>` for each job enqueued by this process
 * and `spool.attempt <name>` for each attempt it runs, with the job id, name and attempt as
 * attributes, and the error of a failed attempt.
 *
 * ```ts
 * traceQueue(queue) // uses the global tracer provider your OpenTelemetry SDK registered
 * ```
 */
export function traceQueue(queue: TracingQueue, options: { readonly tracer?: Tracer } = {}): QueueTracing {
	const tracer = options.tracer ?? trace.getTracer('spool')
	const open = new Map<string, Span>()
	const end = (id: string, fn: (span: Span) => void) => {
		const span = open.get(id)
		if (!span) return
		open.delete(id)
		fn(span)
		span.end()
	}
	const off = [
		queue.on('enqueued', (e) => {
			tracer
				.startSpan(`spool.enqueue ${e.name}`, {
					kind: SpanKind.PRODUCER,
					attributes: { 'messaging.system': 'spool', 'spool.job.id': e.id, 'spool.job.name': e.name },
				})
				.end()
		}),
		queue.on('started', (e) => {
			const span = tracer.startSpan(`spool.attempt ${e.name}`, {
				kind: SpanKind.CONSUMER,
				attributes: {
					'messaging.system': 'spool',
					'spool.job.id': e.id,
					'spool.job.name': e.name,
					'spool.job.attempt': e.attempt,
				},
			})
			open.set(e.id, span)
		}),
		queue.on('completed', (e) => end(e.id, (s) => s.setStatus({ code: SpanStatusCode.OK }))),
		queue.on('failed', (e) =>
			end(e.id, (s) => {
				s.recordException(e.error)
				s.setAttribute('spool.job.retry', e.retryAt !== null)
				s.setStatus({ code: SpanStatusCode.ERROR, message: e.error.message })
			}),
		),
		queue.on('cancelled', (e) =>
			end(e.id, (s) => s.setStatus({ code: SpanStatusCode.ERROR, message: 'cancelled' })),
		),
		queue.on('leaseLost', (e) =>
			end(e.id, (s) => s.setStatus({ code: SpanStatusCode.ERROR, message: 'lease lost' })),
		),
	]
	return {
		close() {
			for (const f of off) f()
			for (const id of [...open.keys()])
				end(id, (s) => s.setStatus({ code: SpanStatusCode.ERROR, message: 'interrupted' }))
		},
	}
}
