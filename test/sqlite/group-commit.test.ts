/**
 * Group commit: enqueues called together share one transaction, each in a
 * savepoint of its own. These tests hold the semantics (each call's own results, a failing call
 * alone rejected, everything returned durable after a reopen), not the speed.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, it } from 'vitest'
import type { NewJob } from '../../src/storage/contract.js'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { newJob, T0 } from '../conformance/harness.js'

let dir: string
let path: string
beforeEach(() => {
	dir = mkdtempSync(join(tmpdir(), 'spool-group-'))
	path = join(dir, 'spool.db')
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

it('concurrent enqueues each get their own results, and all are kept after a reopen', async () => {
	const s = sqlite({ path })
	await s.open()
	const calls = Array.from({ length: 50 }, (_, i) => [newJob({ id: `a${i}` }), newJob({ id: `b${i}` })])
	// The same id twice together: the second call sees the first one's row (one transaction, in order).
	calls.push([newJob({ id: 'a0' })])
	const results = await Promise.all(calls.map((jobs) => s.enqueue({ jobs, now: T0 })))
	expect(results.slice(0, 50).every((r) => r.length === 2 && r.every((x) => x.status === 'created'))).toBe(
		true,
	)
	expect(results[50]).toEqual([{ status: 'existing', id: 'a0' }])
	await s.close()

	const again = sqlite({ path })
	await again.open()
	expect((await again.getStats({})).total.pending).toBe(100)
	await again.close()
})

it('a call that fails is rejected alone; the calls around it are applied', async () => {
	const s = sqlite({ path })
	await s.open()
	// An id of null breaks the NOT NULL constraint inside the shared transaction.
	const bad = { ...newJob(), id: null } as unknown as NewJob
	const [first, broken, last] = await Promise.allSettled([
		s.enqueue({ jobs: [newJob({ id: 'first' })], now: T0 }),
		s.enqueue({ jobs: [newJob({ id: 'inside' }), bad], now: T0 }),
		s.enqueue({ jobs: [newJob({ id: 'last' })], now: T0 }),
	])
	expect(first.status).toBe('fulfilled')
	expect(broken.status).toBe('rejected')
	expect(last.status).toBe('fulfilled')
	expect(await s.getJob({ id: 'first' })).not.toBeNull()
	expect(await s.getJob({ id: 'last' })).not.toBeNull()
	// The failed call's savepoint was rolled back whole: its first job is not half-kept.
	expect(await s.getJob({ id: 'inside' })).toBeNull()
	await s.close()
})

it('close writes the enqueues already called before closing the file', async () => {
	const s = sqlite({ path })
	await s.open()
	const pending = s.enqueue({ jobs: [newJob({ id: 'late' })], now: T0 })
	await s.close()
	expect(await pending).toEqual([{ status: 'created', id: 'late' }])
	const again = sqlite({ path })
	await again.open()
	expect((await again.getJob({ id: 'late' }))?.status).toBe('pending')
	await again.close()
})
