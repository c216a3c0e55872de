import { expect, it } from 'vitest'
import { z } from 'zod'
import { createJob, createQueue, silentLogger } from '../src/index.js'
import { createTestClock, recordingStorage } from '../src/testing/index.js'

const welcome = createJob({ name: 'welcome', input: z.object({ userId: z.string() }) }, async () => {
	throw new Error('must not run under a recording storage')
})

it('a recording storage records enqueues and runs nothing (seed 003 DummyBackend)', async () => {
	const storage = recordingStorage()
	const queue = createQueue({ jobs: { welcome }, storage, logger: silentLogger })
	await queue.enqueue('welcome', { userId: 'u1' }, { dedupeKey: 'welcome:u1' })
	expect(await queue.enqueue('welcome', { userId: 'u1' }, { dedupeKey: 'welcome:u1' })).toBeNull()
	await queue.drain()
	expect(storage.jobs).toHaveLength(1)
	expect(storage.jobs[0]).toMatchObject({ name: 'welcome', input: { userId: 'u1' }, dedupeKey: 'welcome:u1' })
	expect((await queue.getStats()).total.pending).toBe(1)
	storage.clear()
	expect(storage.jobs).toHaveLength(0)
	await queue.close()
})

it('inline execution runs the handler inside the enqueuing call (seed 003 ImmediateBackend)', async () => {
	const sent: string[] = []
	const mail = createJob({ name: 'mail', input: z.object({ to: z.string() }) }, async ({ to }) => {
		sent.push(to)
	})
	const queue = createQueue({ jobs: { mail }, worker: { inline: true }, logger: silentLogger })
	await queue.enqueue('mail', { to: 'a@b.c' })
	expect(sent).toEqual(['a@b.c'])
	await queue.jobs.mail.start({ to: 'd@e.f' })
	expect(sent).toEqual(['a@b.c', 'd@e.f'])
	await queue.close()
})

it('the test clock fires timers in order, only when moved', async () => {
	const clock = createTestClock(0)
	const fired: number[] = []
	clock.setTimeout(() => fired.push(2), 20)
	clock.setTimeout(() => fired.push(1), 10)
	const cancelled = clock.setTimeout(() => fired.push(99), 15)
	clock.clearTimeout(cancelled)
	await clock.advance(15)
	expect(fired).toEqual([1])
	expect(clock.now()).toBe(15)
	await clock.advance(100)
	expect(fired).toEqual([1, 2])
	expect(clock.pendingTimers).toBe(0)
})
