/**
 * Differential test: the same random operations against the memory storage (the reference) and
 * the file log, which is reopened (a full replay, now and then after a compaction) whenever no job
 * is running. Every result and, now and then, the whole state must be the same, lease tokens aside
 * (each storage makes its own).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { JsonText } from '../../src/json.js'
import { silentLogger } from '../../src/logger.js'
import type { Outcome, Storage } from '../../src/storage/contract.js'
import { fileLog } from '../../src/storage/file/index.js'
import { memory } from '../../src/storage/memory.js'
import { newJob, T0 } from '../conformance/harness.js'

let dir: string
beforeAll(() => {
	dir = mkdtempSync(join(tmpdir(), 'spool-file-diff-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function rng(seed: number): () => number {
	let a = seed >>> 0
	return () => {
		a = (a + 0x6d2b79f5) >>> 0
		let t = a
		t = Math.imul(t ^ (t >>> 15), t | 1)
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296
	}
}

/** JSON without lease tokens, keys sorted (the order of an object's keys is not state). */
const plain = (v: unknown) =>
	JSON.stringify(v, (k, x) => {
		if (k === 'token') return undefined
		if (x === null || typeof x !== 'object' || Array.isArray(x)) return x
		return Object.fromEntries(Object.entries(x as object).sort(([a], [b]) => (a < b ? -1 : 1)))
	})

async function dump(s: Storage): Promise<string> {
	const { jobs } = await s.listJobs({ limit: 100_000 })
	const steps = await Promise.all(jobs.map((j) => s.getSteps({ jobId: j.id })))
	return plain({ jobs, steps, stats: await s.getStats({}) })
}

// Small compactAt: most reopens replay a snapshot. Huge: every reopen replays the whole history,
// so finished jobs go through the replay's candidates and the archive of completed jobs.
const runs: [seed: number, compactAt: number][] = [
	[11, 16 * 1024],
	[12, 16 * 1024],
	[13, 16 * 1024],
	[21, 2 ** 30],
	[22, 2 ** 30],
	[23, 256 * 1024],
]
for (const [seed, compactAt] of runs) {
	it(`matches the memory storage, reopened along the way (seed ${seed}, compactAt ${compactAt})`, async () => {
		const random = rng(seed)
		const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
		const path = join(dir, `diff-${seed}.log`)
		const open = async () => {
			const s = fileLog({ path, compactAt, logger: silentLogger })
			await s.open()
			return s
		}
		const ref = memory()
		let file = await open()
		const tokens = { ref: new Map<string, string>(), file: new Map<string, string>() }
		const ids: string[] = []
		let now = T0
		let reopened = 0

		const both = async <R>(
			what: string,
			run: (s: Storage, t: Map<string, string>) => Promise<R>,
		): Promise<R> => {
			const a = await run(ref, tokens.ref)
			const b = await run(file, tokens.file)
			expect(plain(b), what).toBe(plain(a))
			return a
		}
		const remember = (t: Map<string, string>, jobs: readonly { id: string; lease: { token: string } }[]) => {
			for (const j of jobs) t.set(j.id, j.lease.token)
		}

		for (let op = 0; op < 600; op++) {
			const r = random()
			if (r < 0.2) {
				const jobs = Array.from({ length: 1 + Math.floor(random() * 3) }, () => {
					const id = ids.length > 0 && random() < 0.1 ? pick(ids) : `j${ids.length}-${seed}`
					if (!ids.includes(id)) ids.push(id)
					return newJob({
						id,
						name: pick(['a', 'b']),
						priority: Math.floor(random() * 3),
						runAt: now + pick([0, 0, -100, 500]),
						maxAttempts: pick([1, 2, 3]),
						dedupeKey: pick([null, null, 'k1', 'k2']),
						dedupeScope: pick(['pending', 'pending+active'] as const),
						idempotencyKey: pick([null, null, null, 'i1']),
						parentId: ids.length > 3 && random() < 0.2 ? pick(ids) : null,
						input: JSON.stringify({ n: op }) as JsonText,
					})
				})
				await both('enqueue', (s) => s.enqueue({ jobs, now }))
			} else if (r < 0.4) {
				const params = {
					names: pick([['a'], ['b'], ['a', 'b']]),
					owner: 'w',
					limit: 1 + Math.floor(random() * 4),
					leaseMs: 1000,
					now,
				}
				await both('claim', async (s, t) => {
					const claimed = await s.claim(params)
					remember(t, claimed)
					return claimed
				})
			} else if (r < 0.6) {
				const chosen = [...tokens.ref.keys()].filter(() => random() < 0.5).slice(0, 3)
				const kinds = chosen.map(() => pick(['completed', 'retry', 'dead', 'suspended', 'released'] as const))
				const stale = chosen.map(() => random() < 0.1)
				const logs = chosen.length > 0 && random() < 0.3 ? new Map([[chosen[0]!, [`l${op}`]]]) : undefined
				await both('settle', (s, t) => {
					const outcomes = chosen.map((id, i): Outcome => {
						const token = stale[i] ? 'stale' : (t.get(id) ?? 'none')
						const error = { attempt: 1, name: 'Error', message: `e${op}`, at: now }
						switch (kinds[i]!) {
							case 'completed':
								return {
									kind: 'completed',
									id,
									token,
									output: JSON.stringify(op) as JsonText,
									remove: random() < 0,
								}
							case 'retry':
								return { kind: 'retry', id, token, error, runAt: now + 200 }
							case 'dead':
								return { kind: 'dead', id, token, error }
							case 'suspended':
								return { kind: 'suspended', id, token, wakeAt: i % 2 ? null : now + 300 }
							default:
								return { kind: 'released', id, token }
						}
					})
					return s.settle({ outcomes, logs, now })
				})
			} else if (r < 0.65) {
				const id = pick([...tokens.ref.keys(), 'none'])
				const state = pick(['started', 'completed', 'failed'] as const)
				await both('saveStep', (s, t) =>
					s.saveStep({
						jobId: id,
						token: t.get(id) ?? 'none',
						stepId: `run:${op % 3}`,
						name: 'x',
						state,
						output: state === 'completed' ? (JSON.stringify(op) as JsonText) : null,
						error: null,
						now,
					}),
				)
			} else if (r < 0.7) {
				await both('reap', (s) => s.reap({ now, limit: 100 }))
			} else if (r < 0.74 && ids.length > 0) {
				const id = pick(ids)
				await both('cancel', (s) => s.cancel({ id, now }))
			} else if (r < 0.77 && ids.length > 0) {
				const wake = [pick(ids), pick(ids)]
				await both('wake', (s) => s.wake({ ids: wake, now }))
			} else if (r < 0.8 && ids.length > 0) {
				const replay = [pick(ids)]
				await both('replay', (s) => s.replay({ ids: replay, now }))
			} else if (r < 0.82) {
				await both('prune', (s) =>
					s.prune({ statuses: ['completed', 'cancelled'], before: now - 500, limit: 3 }),
				)
			} else if (r < 0.86) {
				const job = {
					...newJob({ id: `c${op}-${seed}`, name: 'a', dedupeKey: 'k1', dedupeScope: 'pending' }),
					dedupeKey: 'k1',
				}
				ids.push(job.id)
				await both('claimOrEnqueue', async (s, t) => {
					const res = await s.claimOrEnqueue({ job, owner: 'web', leaseMs: 1000, now })
					if (res.status === 'claimed') remember(t, [res.job])
					return res
				})
			} else {
				now += Math.floor(random() * 400)
			}
			if (op % 60 === 59) {
				// Give every running job back, so nothing depends on a lease across the reopen.
				const running = [...tokens.ref.keys()]
				await both('release all', (s, t) =>
					s.settle({
						outcomes: running.map((id) => ({ kind: 'released', id, token: t.get(id) ?? 'none' })),
						now,
					}),
				)
			}
			if ((await ref.getStats({})).total.active === 0 && (op % 60 === 59 || random() < 0.1)) {
				await file.close()
				file = await open()
				reopened++
				tokens.ref.clear()
				tokens.file.clear()
			}
			if (op % 50 === 0) expect(await dump(file), `state after op ${op}`).toBe(await dump(ref))
		}
		expect(await dump(file)).toBe(await dump(ref))
		expect(reopened).toBeGreaterThan(3)
		await file.close()
	}, 60_000)
}
