/**
 * Every example is a program that exits 0 when it did what it shows; CI runs them all here, as
 * real child processes.
 */
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { exited, startChild } from './helpers/child.js'

const root = join(import.meta.dirname, '..', 'examples')
const scripts = readdirSync(root, { recursive: true, encoding: 'utf8' })
	.filter((f) => /(^|\/)(seed-[^/]*\.ts|index\.ts)$/.test(f) || f === 'demo.ts')
	.sort()

it('has examples', () => {
	expect(scripts).toContain('demo.ts')
})

for (const script of scripts) {
	it(`runs examples/${script}`, async () => {
		const child = startChild(join(root, script), script === 'demo.ts' ? ['--jobs', '90'] : [])
		const { code } = await exited(child)
		if (code !== 0) throw new Error(`examples/${script} exited ${code}:\n${child.output.join('')}`)
	}, 60_000)
}
