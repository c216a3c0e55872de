/**
 * thread(): a step run in a real worker thread (piscina). Its result is stored like any step's; a
 * function that uses a variable from around it fails with a clear ThreadClosureError, not a wrong
 * result.
 */
import { expect, it } from 'vitest'
import {
	createJob,
	createQueue,
	type JobContext,
	JobFailedError,
	silentLogger,
	ThreadClosureError,
	thread,
} from '../../src/index.js'

it('runs fn in a worker thread as a step, and refuses a function that closes over outer variables', async () => {
	const outer = 7
	const sum = createJob({ name: 'sum', retry: 0 }, async (n: number, ctx: JobContext) => {
		const inThread = await thread(
			{ name: 'sum', maxOldGenerationSizeMb: 64 },
			async (input: { n: number }, t) => {
				t.log('summing in a thread')
				let total = 0
				for (let i = 1; i <= input.n; i++) total += i
				return { total, main: t.threadId === 0 }
			},
			{ n },
		)
		const again = await ctx.thread('again', (x: number) => x * 2, n)
		return { ...inThread, again }
	})
	const leaky = createJob({ name: 'leaky', retry: 3 }, async () =>
		thread('leaky', (x: number) => x + outer, 1),
	)
	const q = createQueue({ jobs: { sum, leaky }, logger: silentLogger })
	try {
		const h = await q.jobs.sum.start(100)
		expect(await h.result()).toEqual({ total: 5050, main: false, again: 200 })
		const steps = await q.getSteps(h.id)
		expect(steps.map((s) => [s.stepId, s.state, s.output])).toEqual([
			['thread:sum', 'completed', '{"total":5050,"main":false}'],
			['thread:again', 'completed', '200'],
		])
		expect((await q.getJob(h.id))!.logs).toContain('summing in a thread')
		const err = await q.jobs.leaky.run().catch((e: unknown) => e)
		expect(err).toBeInstanceOf(JobFailedError)
		const cause = (err as JobFailedError).cause as Error
		expect(cause).toBeInstanceOf(ThreadClosureError)
		expect(cause.message).toMatch(/outer is not defined.*serialised/s)
		// Fatal: a closure error cannot be fixed by retrying.
		expect((await q.listJobs({ name: 'leaky' })).jobs[0]!.attempt).toBe(1)
	} finally {
		await q.close()
	}
})
