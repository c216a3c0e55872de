/** pipe.waitFor inside a handler: suspended until a matching message is sent, then resumed with it. */
import { expect, it } from 'vitest'
import { z } from 'zod'
import { createJob, createPipe, createQueue, silentLogger } from '../../src/index.js'

it('pipe.waitFor resumes a suspended job with the first matching message', async () => {
	const p = createPipe({ name: 'p', input: z.object({ value: z.number() }) })
	const bar = createJob({ name: 'bar' }, async () => {
		const byPattern = await p.waitFor({ value: 55 })
		const byPredicate = await p.waitFor((m) => m.value > 100)
		return { byPattern, byPredicate }
	})
	const q = createQueue({
		jobs: { bar },
		pipes: { p },
		logger: silentLogger,
		worker: { pollInterval: '20ms' },
	})
	try {
		const h = await q.jobs.bar.start()
		await q.drain()
		expect((await q.getJob(h.id))!.status).toBe('waiting')
		await q.pipes.p.send({ value: 42 })
		await q.drain()
		expect((await q.getJob(h.id))!.status).toBe('waiting')
		await q.pipes.p.send({ value: 55 })
		await q.drain()
		await q.pipes.p.send({ value: 7 })
		await q.pipes.p.send({ value: 101 })
		expect(await h.result({ timeout: '10s' })).toEqual({
			byPattern: { value: 55 },
			byPredicate: { value: 101 },
		})
	} finally {
		await q.close()
	}
})
