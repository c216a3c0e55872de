import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createJob, createQueue, FatalError } from '../src/index.js'

describe('smoke', () => {
	it('runs a job and returns its output', async () => {
		const add = createJob(
			{ name: 'add', input: z.object({ a: z.number(), b: z.number() }) },
			async ({ a, b }) => a + b,
		)
		const queue = createQueue({ jobs: { add } })
		const out = await queue.jobs.add.run({ a: 1, b: 2 })
		expect(out).toBe(3)
		await queue.close()
	})
	it('dead-letters a fatal error', async () => {
		const boom = createJob({ name: 'boom' }, async () => {
			throw new FatalError('nope')
		})
		const queue = createQueue({ jobs: { boom } })
		await expect(queue.jobs.boom.run()).rejects.toThrow(/nope/)
		const dead = await queue.dead.list()
		expect(dead.jobs).toHaveLength(1)
		await queue.close()
	})
})
