/**
 * Prometheus metrics and OpenTelemetry spans of a real queue (memory storage, real worker).
 */
import type {
	Attributes,
	Context,
	Exception,
	Span,
	SpanContext,
	SpanOptions,
	SpanStatus,
	Tracer,
} from '@opentelemetry/api'
import { SpanStatusCode } from '@opentelemetry/api'
import { Registry } from 'prom-client'
import { expect, it } from 'vitest'
import { createJob, createQueue, FatalError, silentLogger } from '../../src/index.js'
import { createMetrics, traceQueue } from '../../src/metrics/index.js'

function jobs() {
	let flaky = 0
	return {
		ok: createJob({ name: 'ok' }, async (i: { n: number }) => ({ n: i.n })),
		flaky: createJob({ name: 'flaky', retry: 2, backoff: '10ms' }, async () => {
			if (flaky++ === 0) throw new Error('first attempt fails')
			return 'ok'
		}),
		fatal: createJob({ name: 'fatal' }, async () => {
			throw new FatalError('never works')
		}),
	}
}

async function runAll(queue: ReturnType<typeof createQueue<ReturnType<typeof jobs>>>) {
	await queue.enqueue('ok', { n: 1 })
	await queue.enqueue('ok', { n: 2 }, { delay: '30ms' })
	await queue.enqueue('flaky')
	await queue.enqueue('fatal')
	await expect
		.poll(
			async () => {
				const { total } = await queue.getStats()
				return total.completed + total.dead
			},
			{ timeout: 10_000 },
		)
		.toBe(4)
}

/** The value of a series, its labels in any order: `value(text, 'm{a="1",b="2"}')`. */
function value(text: string, series: string): number | undefined {
	const key = (s: string) => {
		const m = /^([^{ ]+)(?:\{(.*)\})?$/.exec(s)!
		return `${m[1]}|${(m[2] ?? '').split(',').sort().join(',')}`
	}
	const want = key(series)
	for (const line of text.split('\n')) {
		const at = line.lastIndexOf(' ')
		if (!line.startsWith('#') && at > 0 && key(line.slice(0, at)) === want) return Number(line.slice(at + 1))
	}
	return undefined
}

it('counts jobs by state, throughput by outcome, attempt durations and queue latency', async () => {
	const queue = createQueue({ jobs: jobs(), logger: silentLogger, worker: { pollInterval: '10ms' } })
	const registry = new Registry()
	const metrics = createMetrics({ queue, registry, labels: { service: 'test' } })
	try {
		await runAll(queue)
		const text = await registry.metrics()
		expect(value(text, 'spool_jobs{name="ok",state="completed",service="test"}')).toBe(2)
		expect(value(text, 'spool_jobs{name="fatal",state="dead",service="test"}')).toBe(1)
		expect(value(text, 'spool_jobs_enqueued_total{name="ok",service="test"}')).toBe(2)
		expect(value(text, 'spool_attempts_total{name="flaky",outcome="retried",service="test"}')).toBe(1)
		expect(value(text, 'spool_attempts_total{name="flaky",outcome="completed",service="test"}')).toBe(1)
		expect(value(text, 'spool_attempts_total{name="fatal",outcome="dead",service="test"}')).toBe(1)
		expect(
			value(text, 'spool_attempt_duration_seconds_count{name="ok",outcome="completed",service="test"}'),
		).toBe(2)
		expect(
			value(text, 'spool_attempt_duration_seconds_count{name="fatal",outcome="dead",service="test"}'),
		).toBe(1)
		expect(value(text, 'spool_queue_latency_seconds_count{name="ok",service="test"}')).toBe(2)
		// Two attempts of flaky: the retry waited for its backoff after it was due, not before.
		expect(value(text, 'spool_queue_latency_seconds_count{name="flaky",service="test"}')).toBe(2)
		expect(registry.contentType).toContain('text/plain')
	} finally {
		metrics.close()
		await queue.close()
	}
})

interface Recorded {
	name: string
	attributes: Attributes
	status?: SpanStatus
	exceptions: Exception[]
	ended: boolean
}

/** A tracer of the OpenTelemetry API that records what it is given (an SDK would export it). */
function recordingTracer(spans: Recorded[]): Tracer {
	const make = (name: string, options?: SpanOptions): Span => {
		const rec: Recorded = { name, attributes: { ...options?.attributes }, exceptions: [], ended: false }
		spans.push(rec)
		const span: Span = {
			spanContext: (): SpanContext => ({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 1 }),
			setAttribute: (k, v) => {
				if (v !== undefined) rec.attributes[k] = v
				return span
			},
			setAttributes: (a) => {
				Object.assign(rec.attributes, a)
				return span
			},
			addEvent: () => span,
			addLink: () => span,
			addLinks: () => span,
			setStatus: (s) => {
				rec.status = s
				return span
			},
			updateName: () => span,
			end: () => {
				rec.ended = true
			},
			isRecording: () => true,
			recordException: (e) => {
				rec.exceptions.push(e)
			},
		}
		return span
	}
	return {
		startSpan: make,
		startActiveSpan: ((name: string, ...rest: unknown[]) => {
			const fn = rest[rest.length - 1] as (s: Span) => unknown
			const options = typeof rest[0] === 'object' ? (rest[0] as SpanOptions) : undefined
			return fn(make(name, options))
		}) as Tracer['startActiveSpan'],
	} satisfies Tracer & { startSpan(n: string, o?: SpanOptions, c?: Context): Span }
}

it('records a span per enqueue and per attempt, with errors', async () => {
	const spans: Recorded[] = []
	const queue = createQueue({ jobs: jobs(), logger: silentLogger, worker: { pollInterval: '10ms' } })
	const tracing = traceQueue(queue, { tracer: recordingTracer(spans) })
	try {
		await runAll(queue)
		await queue.close()
		expect(spans.filter((s) => s.name === 'spool.enqueue ok')).toHaveLength(2)
		const attempts = spans.filter((s) => s.name.startsWith('spool.attempt '))
		expect(attempts.map((s) => s.name).sort()).toEqual([
			'spool.attempt fatal',
			'spool.attempt flaky',
			'spool.attempt flaky',
			'spool.attempt ok',
			'spool.attempt ok',
		])
		expect(attempts.every((s) => s.ended)).toBe(true)
		const fatal = attempts.find((s) => s.name === 'spool.attempt fatal')!
		expect(fatal.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'never works' })
		expect(fatal.exceptions).toHaveLength(1)
		expect(fatal.attributes).toMatchObject({
			'spool.job.name': 'fatal',
			'spool.job.attempt': 1,
			'spool.job.retry': false,
		})
		const flaky = attempts.filter((s) => s.name === 'spool.attempt flaky')
		expect(flaky.map((s) => s.status?.code)).toEqual([SpanStatusCode.ERROR, SpanStatusCode.OK])
	} finally {
		tracing.close()
		await queue.close()
	}
})

it('is a no-op without an OpenTelemetry SDK', async () => {
	const queue = createQueue({ jobs: jobs(), logger: silentLogger, worker: { pollInterval: '10ms' } })
	const errors: unknown[] = []
	queue.on('error', (e) => errors.push(e))
	const tracing = traceQueue(queue)
	try {
		await runAll(queue)
		expect(errors).toEqual([])
	} finally {
		tracing.close()
		await queue.close()
	}
})
