/**
 * Bundles a child-process fixture into one ES module with esbuild, so that starting it takes a
 * fraction of the time `--import tsx` takes (tests that start many children). The bundle lives
 * under node_modules/.cache so its imports of packages resolve.
 */
import { mkdirSync } from 'node:fs'
import { basename, join } from 'node:path'
import { build } from 'esbuild'

export async function bundleFixture(entry: string): Promise<string> {
	const out = join(import.meta.dirname, '..', '..', 'node_modules', '.cache', 'spool-test')
	mkdirSync(out, { recursive: true })
	const file = join(out, `${basename(entry, '.ts')}-${process.pid}.mjs`)
	await build({
		entryPoints: [entry],
		outfile: file,
		bundle: true,
		platform: 'node',
		format: 'esm',
		target: 'node20',
		packages: 'external',
		logLevel: 'error',
	})
	return file
}
