/**
 * SIGKILL at random moments: a workflow of 20 steps and 2 child jobs, run by worker processes over
 * one SQLite file, killed ten times. It must complete with the right output; a step whose result
 * was recorded never runs again (the only repeats are the steps in flight when a process died);
 * each child job is started exactly once.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { createQueue, silentLogger } from '../../src/index.js'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { exited, printed, startChild } from '../helpers/child.js'

const WORKFLOW = join(import.meta.dirname, 'fixtures', 'workflow.ts')
let dir: string

beforeEach(() => {
	dir = mkdtempSync(join(tmpdir(), 'spool-durable-crash-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

interface Effect {
	readonly pid: number
	readonly track: string
	readonly name: string
}

function effects(): Effect[] {
	const file = join(dir, 'effects.log')
	if (!existsSync(file)) return []
	return readFileSync(file, 'utf8')
		.split('\n')
		.filter(Boolean)
		.map((line) => {
			const [pid, track, name] = line.split(' ')
			return { pid: Number(pid), track: track!, name: name! }
		})
}

it('a 20-step workflow with 2 children survives 10 SIGKILLs with no recorded step rerun and no child started twice', async () => {
	const db = join(dir, 'spool.db')
	const killed = new Set<number>()
	let kills = 0
	let output: string | null = null
	for (let round = 0; round < 30 && output === null; round++) {
		const child = startChild(WORKFLOW, [db, dir])
		await printed(child, 'ready')
		if (kills < 10) {
			// Once this process has made some progress (a new side effect), kill it a random moment
			// later: in a step, between a step and its record, in a child, a suspension, a settle.
			const before = effects().length
			while (effects().length === before && child.exitCode === null)
				await new Promise((r) => setTimeout(r, 5))
			await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 60)))
			if (child.exitCode === null) {
				child.kill('SIGKILL')
				await exited(child)
				killed.add(child.pid!)
				kills++
				continue
			}
		}
		const { code } = await exited(child)
		const text = child.output.join('')
		expect(code, text).toBe(0)
		output = /done (\S+)/.exec(text)?.[1] ?? null
	}
	expect(kills).toBe(10)
	// 0 + 1 + ... + 19, plus the children's (10 + 1) + (20 + 1).
	expect(output).toBe('222')

	const all = effects()
	// Every step ran, every child step ran.
	const names = new Set(all.map((e) => e.name))
	for (let i = 0; i < 20; i++) expect(names.has(`step-${i}`)).toBe(true)
	for (const n of [1, 2]) for (const s of ['fetch', 'store']) expect(names.has(`child-${n}-${s}`)).toBe(true)
	// A repeat is allowed only for the step a killed process had in flight: its last effect on that
	// track. A step recorded as done is never run again.
	const lastOf = new Map<string, Effect>()
	for (const e of all) lastOf.set(`${e.pid} ${e.track}`, e)
	const seen = new Map<string, Effect[]>()
	for (const e of all) seen.set(e.name, [...(seen.get(e.name) ?? []), e])
	let repeats = 0
	for (const [name, runs] of seen) {
		for (const earlier of runs.slice(0, -1)) {
			repeats++
			expect(
				killed.has(earlier.pid),
				`${name} ran again after process ${earlier.pid}, which was not killed`,
			).toBe(true)
			expect(lastOf.get(`${earlier.pid} ${earlier.track}`), `${name} was rerun though it was recorded`).toBe(
				earlier,
			)
		}
	}
	expect(repeats).toBeLessThanOrEqual(kills * 3)

	// Exactly two children, under ids derived from the parent's, each completed once.
	const q = createQueue({ storage: sqlite({ path: db }), worker: false, logger: silentLogger })
	const children = (await q.listJobs({ parentId: 'wf' })).jobs
	expect(children.map((c) => c.id).sort()).toEqual(['wf.10', 'wf.11'])
	expect(children.map((c) => c.status)).toEqual(['completed', 'completed'])
	expect((await q.getJob('wf'))!.status).toBe('completed')
	await q.close()
}, 90_000)
