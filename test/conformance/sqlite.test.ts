import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sqlite } from '../../src/storage/sqlite/index.js'
import { runConformance } from './index.js'

runConformance('sqlite', {
	durable: true,
	async create() {
		const dir = mkdtempSync(join(tmpdir(), 'spool-sqlite-'))
		const path = join(dir, 'spool.db')
		const open = async () => {
			const s = sqlite({ path })
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
