/**
 * The worker process of the PostgreSQL benchmark: `node --import tsx child.ts <system> <mode>
 * <concurrency> <count>`. Runs no-op jobs of one system and reports to the parent over IPC:
 * - `process`: the time from the first job's start to the `count`-th's, duplicates, peak RSS;
 * - `latency`: for each counted job, the time from just before its enqueue (in the parent) to the
 *   start of its handler here, in milliseconds.
 */
import { type Payload, wallNow } from './common.js'
import { loadSystem } from './registry.js'

/** What the child reports. */
export type ChildReport =
	| { readonly type: 'ready'; readonly rssIdleMb: number }
	| {
			readonly type: 'processed'
			readonly count: number
			readonly duplicates: number
			readonly firstAt: number
			readonly lastAt: number
			readonly rssPeakMb: number
			/** The cap on the run's time was reached before `count` jobs ran. */
			readonly capped: boolean
	  }
	| { readonly type: 'latency'; readonly latencies: number[]; readonly rssPeakMb: number }

const [key, mode, concurrencyArg, countArg, capArg] = process.argv.slice(2)
const concurrency = Number(concurrencyArg)
const count = Number(countArg)
/** Processing stops counting this long after the first job started (slow systems). */
const capMs = Number(capArg ?? 60_000)
const system = await loadSystem(key ?? '')

function send(report: ChildReport): void {
	process.send?.(report)
}

let rssPeak = process.memoryUsage().rss
const sampler = setInterval(() => {
	rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
}, 50)

const seen = new Uint8Array(count)
let done = 0
let duplicates = 0
let firstAt = 0
let lastAt = 0
const latencies: number[] = []
let capped = false
let finish: () => void = () => {}
const finished = new Promise<void>((resolve) => {
	finish = resolve
})

function onJob(payload: Payload): void {
	const now = wallNow()
	if (mode === 'latency') {
		if (payload.warm) return
		latencies.push(now - payload.t)
		if (latencies.length === count) finish()
		return
	}
	if (seen[payload.i]) duplicates++
	seen[payload.i] = 1
	if (done === 0) {
		firstAt = now
		setTimeout(() => {
			capped = done < count
			finish()
		}, capMs).unref()
	}
	done++
	lastAt = now
	if (done === count) finish()
}

const rssIdleMb = process.memoryUsage().rss / 1024 / 1024
const consumer = await system.consumer({ concurrency, onJob })
send({ type: 'ready', rssIdleMb })
await finished
rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
const rssPeakMb = rssPeak / 1024 / 1024
if (mode === 'latency') send({ type: 'latency', latencies, rssPeakMb })
else send({ type: 'processed', count: done, duplicates, firstAt, lastAt, rssPeakMb, capped })
clearInterval(sampler)
const timer = setTimeout(() => process.exit(0), 10_000)
await consumer.close()
clearTimeout(timer)
process.exit(0)
