import { memory } from '../../src/index.js'
import { runConformance } from './index.js'

runConformance('memory', {
	durable: false,
	async create() {
		const storage = memory()
		await storage.open()
		// One process's memory: "reopening" is another handle on the same state.
		return { storage, reopen: async () => storage, destroy: async () => {} }
	},
})
