/**
 * Types are the documentation users read first: these checks run under the type checker (CI's
 * `npm run typecheck`) and fail the build if the public types drift.
 */
import { describe, expectTypeOf, it } from 'vitest'
import { z } from 'zod'
import { createJob, createQueue, type JobContext, type JobHandle } from '../src/index.js'

/** Type-checks `fn` without running it. */
function typeOnly(_fn: () => void): void {}

const sendEmail = createJob(
	{ name: 'send-email', input: z.object({ to: z.string(), subject: z.string().default('hi') }) },
	async (input) => {
		expectTypeOf(input).toEqualTypeOf<{ to: string; subject: string }>()
		return { messageId: 'x' }
	},
)
const resize = createJob(
	{ name: 'resize', input: z.object({ file: z.string() }), output: z.object({ width: z.number() }) },
	async () => ({ width: 300 }),
)

describe('typed jobs', () => {
	it('infers inputs and outputs from schemas', () => {
		const queue = createQueue({ jobs: { sendEmail, resize }, worker: false })
		expectTypeOf(queue.jobs.sendEmail.run)
			.parameter(0)
			.toEqualTypeOf<{ to: string; subject?: string | undefined }>()
		expectTypeOf(queue.jobs.sendEmail.run).returns.toEqualTypeOf<Promise<{ messageId: string }>>()
		expectTypeOf(queue.jobs.resize.start).returns.toEqualTypeOf<Promise<JobHandle<{ width: number }>>>()
		// Enqueue by the job's name, type-checked (checked, not run).
		typeOnly(() => {
			void queue.enqueue('send-email', { to: 'a@b.c' })
			// @ts-expect-error: unknown job name
			void queue.enqueue('send-mail', { to: 'a@b.c' })
			// @ts-expect-error: wrong input type
			void queue.enqueue('resize', { file: 42 })
		})
	})

	it('types bare handlers and producer-only job maps (seed 001)', () => {
		const handlers = {
			send_email: async (_payload: { to: string }, _ctx: JobContext) => {},
			heavy_task: async (payload: { duration: number }) => payload.duration,
		}
		const queue = createQueue({ jobs: handlers, worker: false })
		expectTypeOf(queue.jobs.heavy_task.run).returns.toEqualTypeOf<Promise<number>>()
		typeOnly(() => {
			void queue.enqueue('heavy_task', { duration: 5 })
			// @ts-expect-error: wrong payload
			void queue.enqueue('send_email', { to: 1 })
		})

		type Jobs = {
			'send-email': { to: string; subject: string }
			'process-image': { path: string; output: string }
		}
		const producer = createQueue<Jobs>({ worker: false })
		typeOnly(() => {
			void producer.enqueue('process-image', { path: 'a.png', output: 'b.png' }, { idempotencyKey: 'img:a' })
			// @ts-expect-error: missing field
			void producer.enqueue('send-email', { to: 'x' })
		})
	})

	it('lets a job without input be started with no argument', () => {
		const tick = createJob({ name: 'tick' }, async () => 1)
		const queue = createQueue({ jobs: { tick }, worker: false })
		typeOnly(() => void queue.jobs.tick.start())
		expectTypeOf(queue.jobs.tick.run).returns.toEqualTypeOf<Promise<number>>()
	})
})
