/** The types of flow options, pipes and triggers (checked by `npm run typecheck`). */
import { describe, expectTypeOf, it } from 'vitest'
import { z } from 'zod'
import { createJob, createPipe, createQueue, type Trigger } from '../../src/index.js'

/** Type-checks `fn` without running it. */
function typeOnly(_fn: () => void): void {}

describe('flow types', () => {
	it("types pipes, triggers and flow options as seed 004's kitchen sink uses them", () => {
		const p = createPipe({ name: 'p', input: z.object({ value: z.number() }) })
		expectTypeOf(p.send).parameter(0).toEqualTypeOf<{ value: number }>()
		expectTypeOf(p.into((d) => ({ something: String(d.value) }))).toEqualTypeOf<
			Trigger<{ something: string }>
		>()
		const foo = createJob(
			{
				name: 'foo',
				input: z.object({ something: z.string() }),
				output: z.object({ something: z.string() }),
				trigger: [p.into(({ value }) => ({ something: value.toString() }))],
				throttle: { duration: '1/s', mode: 'queue' },
				concurrency: ({ something }) => ({ id: something, limit: 1 }),
				debounce: { duration: '2s', mode: 'leading', timeout: '10s' },
				cron: '*/5 * * * *',
			},
			async ({ something }) => ({ something }),
		)
		const bar = createJob(
			{
				name: 'bar',
				input: z.object({ other: z.number() }),
				trigger: [foo.into(({ something }) => ({ other: Number(something) }))],
			},
			async () => {},
		)
		const queue = createQueue({ jobs: { foo, bar }, pipes: { p }, worker: false })
		expectTypeOf(queue.pipes.p.send).parameter(0).toEqualTypeOf<{ value: number }>()
		typeOnly(() => {
			void queue.pause('foo')
			// @ts-expect-error: unknown job name
			void queue.pause('nope')
			// @ts-expect-error: wrong pipe data
			void p.send({ value: 'x' })
			createJob(
				// @ts-expect-error: the trigger gives a string where the job takes { other: number }
				{ name: 'baz', input: z.object({ other: z.number() }), trigger: [p.into(() => 'x')] },
				async () => {},
			)
		})
	})
})
