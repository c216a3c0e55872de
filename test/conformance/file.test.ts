import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../../src/logger.js'
import { fileLog } from '../../src/storage/file/index.js'
import { runConformance } from './index.js'

for (const durability of ['fsync', 'none'] as const) {
	runConformance(`file (${durability})`, {
		durable: true,
		async create() {
			const dir = mkdtempSync(join(tmpdir(), 'spool-file-'))
			const path = join(dir, 'jobs.log')
			const open = async () => {
				const s = fileLog({ path, durability, logger: silentLogger })
				await s.open()
				return s
			}
			return {
				storage: await open(),
				reopen: open,
				destroy: async () => rmSync(dir, { recursive: true, force: true }),
			}
		},
	})
}
