/**
 * A debounced search indexer: documents are saved many times in a row while someone types; the
 * indexer should run once per document after the edits settle, with the latest text, and at the
 * latest 1 s after the first edit of a series (`timeout`) even if the edits never stop. Each
 * document is its own series (`debounce` as a function of the input). Every save's `run()`
 * resolves with the one indexing run that took it.
 * Run: npx tsx examples/debounced-indexer/index.ts
 */
import { z } from 'zod'
import { createJob, createQueue, silentLogger } from '../../src/index.js'

const indexed: string[] = []
const index = createJob(
	{
		name: 'index',
		input: z.object({ doc: z.string(), text: z.string() }),
		debounce: ({ doc }) => ({ id: `index:${doc}`, duration: '200ms', timeout: '1s' }),
	},
	async ({ doc, text }) => {
		indexed.push(`${doc}: ${text}`)
		return { doc, words: text.split(' ').length }
	},
)

const queue = createQueue({ jobs: { index }, logger: silentLogger, worker: { pollInterval: '20ms' } })
const results: Promise<{ doc: string; words: number }>[] = []
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// Someone types in two documents: a keystroke every 50 ms.
let text = ''
for (const word of ['the', 'quick', 'brown', 'fox', 'jumps']) {
	text = text ? `${text} ${word}` : word
	results.push(queue.jobs.index.run({ doc: 'a', text }))
	results.push(queue.jobs.index.run({ doc: 'b', text: text.toUpperCase() }))
	await sleep(50)
}
const settled = await Promise.all(results)
console.log('indexed:', indexed)
console.log('every save resolved with:', [...new Set(settled.map((r) => `${r.doc}=${r.words} words`))])
await queue.close()

if (indexed.length !== 2) throw new Error(`expected one run per document, got ${indexed.length}`)
if (!indexed.includes('a: the quick brown fox jumps')) throw new Error('the run should have the latest text')
if (settled.some((r) => r.words !== 5)) throw new Error('every save should resolve with the final run')
console.log('debounced indexer example: ok')
