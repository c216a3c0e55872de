import pg from 'pg'
import { afterAll } from 'vitest'
import { postgres } from '../../src/storage/postgres/index.js'
import { runConformance } from './index.js'

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const admin = new pg.Pool({ connectionString: url, max: 2 })
afterAll(() => admin.end())
let n = 0

runConformance('postgres', {
	durable: true,
	async create() {
		// Each test its own schema, dropped after.
		const schema = `spool_conf_${process.pid}_${n++}`
		const open = async () => {
			const s = postgres({ connectionString: url, schema, poolSize: 4 })
			await s.open()
			return s
		}
		return {
			storage: await open(),
			reopen: open,
			destroy: async () => {
				await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
			},
		}
	},
})
