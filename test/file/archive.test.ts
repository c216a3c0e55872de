/**
 * The replay's archive of completed jobs: a log of many plain jobs (enqueued, claimed, completed)
 * mixed with others (failed, dedupe-keyed, cancelled), reopened many times, must read exactly as
 * the memory storage given the same calls: jobs one by one and page by page, stats, prune (oldest
 * first, with a limit, across archived and live jobs), late log lines, cancel, enqueue of a known
 * id; then once more after a compaction writes the archive into a snapshot.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { JsonText } from '../../src/json.js'
import { silentLogger } from '../../src/logger.js'
import type { Storage } from '../../src/storage/contract.js'
import { fileLog } from '../../src/storage/file/index.js'
import { memory } from '../../src/storage/memory.js'
import { newJob, T0 } from '../conformance/harness.js'

let dir: string
beforeAll(() => {
	dir = mkdtempSync(join(tmpdir(), 'spool-file-archive-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const plain = (v: unknown) => JSON.stringify(v, (k, x) => (k === 'token' ? undefined : x))

async function pages(s: Storage, filter: { name?: string; status?: 'completed' | 'pending' }, limit: number) {
	const all: unknown[] = []
	let cursor: string | null = null
	do {
		const page = await s.listJobs({ ...filter, limit, cursor })
		all.push(page.jobs.map((j) => j.id))
		cursor = page.nextCursor
	} while (cursor !== null)
	return all
}

async function dump(s: Storage) {
	const { jobs } = await s.listJobs({ limit: 100_000 })
	return plain({
		jobs,
		stats: await s.getStats({}),
		a: await pages(s, { name: 'a' }, 7),
		done: await pages(s, { status: 'completed' }, 5),
		pending: await pages(s, { status: 'pending' }, 9),
	})
}

it('reads completed jobs from the archive exactly as the memory storage does', async () => {
	const path = join(dir, 'archive.log')
	let compactAt = 2 ** 30
	const open = async () => {
		const s = fileLog({ path, compactAt, logger: silentLogger })
		await s.open()
		return s
	}
	const ref = memory()
	let file = await open()
	let now = T0
	let n = 0
	const both = async <R>(what: string, run: (s: Storage) => Promise<R>): Promise<R> => {
		const a = await run(ref)
		const b = await run(file)
		expect(plain(b), what).toBe(plain(a))
		return a
	}
	const done: string[] = []
	for (let round = 0; round < 12; round++) {
		const jobs = Array.from({ length: 40 }, () => {
			n++
			const over =
				n % 11 === 0
					? { dedupeKey: `k${n % 3}` }
					: n % 13 === 0
						? { idempotencyKey: `i${n}` }
						: n % 17 === 0
							? { parentId: `p${n}` }
							: {}
			return newJob({ id: `j${n}`, name: n % 3 === 0 ? 'b' : 'a', input: `{"n":${n}}` as JsonText, ...over })
		})
		await both('enqueue', (s) => s.enqueue({ jobs, now }))
		for (let k = 0; k < 3; k++) {
			now += 10
			const tokens = new Map<Storage, Map<string, string>>()
			await both('claim', async (s) => {
				const claimed = await s.claim({ names: ['a', 'b'], owner: 'w', limit: 12, leaseMs: 1000, now })
				tokens.set(s, new Map(claimed.map((j) => [j.id, j.lease.token])))
				return claimed.map((j) => j.id)
			})
			const ids = [...tokens.get(ref)!.keys()]
			now += 5
			await both('settle', (s) =>
				s.settle({
					outcomes: ids.map((id, i) =>
						i % 7 === 3
							? {
									kind: 'dead' as const,
									id,
									token: tokens.get(s)!.get(id)!,
									error: { attempt: 1, name: 'Error', message: 'no', at: now },
								}
							: {
									kind: 'completed' as const,
									id,
									token: tokens.get(s)!.get(id)!,
									output: `${i}` as JsonText,
								},
					),
					now,
				}),
			)
			done.push(...ids)
		}
		if (round % 3 === 1) {
			// A late log line from a worker that lost its lease, on a job completed long ago.
			const late = new Map([[done[round]!, [`late ${round}`]]])
			await both('late logs', (s) => s.settle({ outcomes: [], logs: late, now }))
			await both('cancel a finished job', (s) => s.cancel({ id: done[round * 2]!, now }))
			await both('cancel a pending job', (s) => s.cancel({ id: `j${n - 1}`, now }))
			const known = newJob({ id: done[1]!, name: 'a' })
			await both('enqueue a known id', (s) => s.enqueue({ jobs: [known], now }))
			await both('getJob', (s) => s.getJob({ id: done[round]! }))
			await both('getJob unknown', (s) => s.getJob({ id: 'nope' }))
		}
		if (round % 4 === 2) {
			await both('prune', (s) =>
				s.prune({ statuses: ['completed', 'dead'], before: now - 100, limit: 25 + round }),
			)
			await both('prune b', (s) => s.prune({ statuses: ['completed'], before: now, limit: 5, name: 'b' }))
		}
		await file.close()
		if (round === 9) compactAt = 1024 // the next write compacts: the archive goes into a snapshot
		file = await open()

		expect(await dump(file), `after reopen ${round}`).toBe(await dump(ref))
		if (round === 9) {
			now += 1
			const after = newJob({ id: 'after', name: 'a' })
			await both('enqueue after', (s) => s.enqueue({ jobs: [after], now }))
			expect(file.stats.compactions).toBe(1)
			compactAt = 2 ** 30
		}
	}
	expect(await dump(file)).toBe(await dump(ref))
	await file.close()
})
