/**
 * Worker threads for `thread(name, fn, input)`: a piscina pool per set of resource limits, made
 * on first use and closed with the queue. The function travels as its source text
 * (`fn.toString()`) and is rebuilt in the thread, so it cannot see variables from around it: a
 * ReferenceError there becomes a ThreadClosureError that says so.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Piscina } from 'piscina'
import { SpoolError, ThreadClosureError } from '../errors.js'
import type { ThreadLimits } from './steps.js'

/** The code each thread runs: rebuild the function from its source, call it, report what happened. */
const WORKER_SOURCE = `'use strict'
const { threadId } = require('node:worker_threads')
module.exports = async function spoolThread({ source, input }) {
	const logs = []
	let fn
	try {
		fn = (0, eval)('(' + source + ')')
	} catch (err) {
		return { kind: 'syntax', message: String(err && err.message), logs }
	}
	if (typeof fn !== 'function') return { kind: 'syntax', message: 'the source is not a function', logs }
	try {
		const value = await fn(input, { log: (m) => logs.push(String(m)), threadId })
		return { kind: 'ok', value: value === undefined ? null : value, logs }
	} catch (err) {
		const e = err instanceof Error ? err : new Error(String(err))
		return { kind: e instanceof ReferenceError ? 'reference' : 'error', name: e.name, message: e.message, stack: e.stack, logs }
	}
}
`

type ThreadReply =
	| { kind: 'ok'; value: unknown; logs: string[] }
	| { kind: 'syntax'; message: string; logs: string[] }
	| { kind: 'reference' | 'error'; name: string; message: string; stack?: string; logs: string[] }

let workerFile: string | null = null

/** Writes the worker's code to a file once per process (no build step, no loader needed). */
function ensureWorkerFile(): string {
	if (workerFile) return workerFile
	const hash = createHash('sha256').update(WORKER_SOURCE).digest('hex').slice(0, 12)
	const dir = join(tmpdir(), 'spool-threads')
	mkdirSync(dir, { recursive: true })
	const file = join(dir, `worker-${hash}.cjs`)
	writeFileSync(file, WORKER_SOURCE)
	workerFile = file
	return file
}

/** The thread pools of one queue. */
export class ThreadPools {
	private readonly pools = new Map<string, Piscina>()

	constructor(private readonly maxThreads = Math.max(1, availableParallelism() - 1)) {}

	private pool(limits: ThreadLimits): Piscina {
		const key = JSON.stringify(limits)
		let pool = this.pools.get(key)
		if (!pool) {
			const resourceLimits = Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined))
			pool = new Piscina({
				filename: ensureWorkerFile(),
				maxThreads: this.maxThreads,
				minThreads: 0,
				idleTimeout: 30_000,
				resourceLimits,
			})
			this.pools.set(key, pool)
		}
		return pool
	}

	/** Runs `source` applied to `input` in a thread; rejects with the function's error. */
	async run(params: {
		readonly name: string
		readonly source: string
		readonly input: unknown
		readonly limits: ThreadLimits
		readonly signal: AbortSignal
	}): Promise<{ value: unknown; logs: string[] }> {
		const reply = (await this.pool(params.limits).run(
			{ source: params.source, input: params.input },
			{ signal: params.signal },
		)) as ThreadReply
		if (reply.kind === 'ok') return { value: reply.value, logs: reply.logs }
		if (reply.kind === 'syntax') {
			throw new SpoolError(
				'SPOOL_CONFIG',
				`thread '${params.name}': its function could not be rebuilt in the worker thread (${reply.message}). Pass a function expression or an arrow function, not a method or a bound/native function.`,
			)
		}
		if (reply.kind === 'reference') throw new ThreadClosureError(params.name, reply.message)
		const err = new Error(reply.message)
		err.name = reply.name
		if (reply.stack) err.stack = reply.stack
		throw err
	}

	/** Stops every thread. Safe to call twice. */
	async close(): Promise<void> {
		const pools = [...this.pools.values()]
		this.pools.clear()
		await Promise.all(pools.map((p) => p.destroy()))
	}
}
