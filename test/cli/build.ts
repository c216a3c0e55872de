/**
 * Bundles the `spool` command with esbuild once per test file, so each child process starts in a
 * fraction of the time tsx needs to transform the sources. Dependencies stay external (resolved
 * from node_modules), so the bundle lives inside the repository, in the ignored `.tmp/`.
 */
import { cpSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { build } from 'esbuild'

const root = join(import.meta.dirname, '..', '..')

/** Builds `src/cli/spool.ts` and returns the bundle's path. */
export async function buildCli(): Promise<string> {
	const dir = join(root, '.tmp', `cli-${process.pid}`)
	mkdirSync(dir, { recursive: true })
	const outfile = join(dir, 'spool.mjs')
	await build({
		entryPoints: [join(root, 'src', 'cli', 'spool.ts')],
		outfile,
		bundle: true,
		platform: 'node',
		format: 'esm',
		target: 'node20',
		packages: 'external',
		logLevel: 'error',
	})
	// The PostgreSQL storage reads its .sql files next to its module: next to the bundle, here.
	cpSync(join(root, 'src', 'storage', 'postgres', 'sql'), join(dir, 'sql'), { recursive: true })
	return outfile
}
