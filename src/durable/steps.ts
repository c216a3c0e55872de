/**
 * Step records of one attempt: `ctx.run` results and `ctx.runOnce` intents, stored under
 * (job id, step id). A step's id is taken synchronously when it is called, before any await, so
 * steps started together in `Promise.all` get the same ids on every replay.
 */
import { LeaseLostError, StepInterruptedError, toError } from '../errors.js'
import { decodeJson, encodeOutput } from '../json.js'
import type { AttemptError, StepRow, Storage } from '../storage/contract.js'
import type { Clock } from '../time.js'

export class StepRecorder {
	private loaded: Promise<Map<string, StepRow>> | null = null
	private readonly counters = new Map<string, number>()

	constructor(
		private readonly storage: Storage,
		private readonly clock: Clock,
		private readonly jobId: string,
		private readonly token: string,
		private readonly attempt: number,
	) {}

	/** The id of the next step of this kind and name: `run:fetch`, then `run:fetch#2`... */
	private nextId(kind: 'run' | 'once', name: string): string {
		const key = `${kind}:${name}`
		const n = (this.counters.get(key) ?? 0) + 1
		this.counters.set(key, n)
		return n === 1 ? key : `${key}#${n}`
	}

	private steps(): Promise<Map<string, StepRow>> {
		this.loaded ??= this.storage
			.getSteps({ jobId: this.jobId })
			.then((rows) => new Map(rows.map((r) => [r.stepId, r])))
		return this.loaded
	}

	private async save(
		stepId: string,
		name: string,
		state: StepRow['state'],
		output: StepRow['output'],
		error: AttemptError | null,
	): Promise<void> {
		const ok = await this.storage.saveStep({
			jobId: this.jobId,
			token: this.token,
			stepId,
			name,
			state,
			output,
			error,
			now: this.clock.now(),
		})
		if (!ok)
			throw new LeaseLostError(this.jobId, `its lease was lost before step '${name}' could be recorded`)
	}

	/** At-least-once step: stored on success, returned from the record on replay. */
	run<T>(name: string, fn: () => T | Promise<T>): Promise<Awaited<T>> {
		const stepId = this.nextId('run', name)
		return this.steps().then(async (steps): Promise<Awaited<T>> => {
			const prior = steps.get(stepId)
			if (prior?.state === 'completed') return decodeJson<Awaited<T>>(prior.output ?? 'null')
			const value = await fn()
			const output = encodeOutput(value, `The result of step '${name}'`)
			await this.save(stepId, name, 'completed', output, null)
			// Hand back what a replay would: the stored JSON, not the live object.
			return decodeJson<Awaited<T>>(output)
		})
	}

	/** At-most-once side effect: intent first, outcome after; an intent without outcome is never rerun. */
	runOnce<T>(key: string, fn: () => T | Promise<T>): Promise<Awaited<T>> {
		const stepId = this.nextId('once', key)
		return this.steps().then(async (steps): Promise<Awaited<T>> => {
			const prior = steps.get(stepId)
			if (prior?.state === 'completed') return decodeJson<Awaited<T>>(prior.output ?? 'null')
			if (prior?.state === 'started') throw new StepInterruptedError(key)
			await this.save(stepId, key, 'started', null, null)
			let value: Awaited<T>
			try {
				value = await fn()
			} catch (thrown) {
				const err = toError(thrown)
				await this.save(stepId, key, 'failed', null, {
					attempt: this.attempt,
					name: err.name,
					message: err.message,
					stack: err.stack,
					at: this.clock.now(),
				})
				throw thrown
			}
			const output = encodeOutput(value, `The result of runOnce('${key}')`)
			await this.save(stepId, key, 'completed', output, null)
			return decodeJson<Awaited<T>>(output)
		})
	}
}
