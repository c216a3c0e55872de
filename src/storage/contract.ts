/**
 * THE storage contract. Every storage (memory, SQLite, file log, PostgreSQL...) implements this
 * interface and passes test/conformance. It is designed from the job states and guarantees in
 * DESIGN.md, not from any one database:
 *
 *   pending ──claim──▶ active ──settle: completed───────────────▶ completed
 *      ▲                 │ settle: retry ──────────────────────────▶ pending (runAt = later)
 *      │                 │ settle: dead ───────────────────────────▶ dead
 *      │                 │ settle: suspend ────────────────────────▶ waiting ──wake──▶ pending
 *      │                 │ settle: release (shutdown) ─────────────▶ pending (attempt given back)
 *      │                 │ lease expired ──reap──▶ pending, or dead when no attempt is left
 *      └──── replay ──── dead
 *   pending | active | waiting ──cancel──▶ cancelled
 *
 * Rules every implementation keeps:
 * - Each method takes one params object and returns plain data; no driver rows leak up.
 * - Time comes from `now` in the params (the queue's clock), never from the storage's own clock, so
 *   a test clock drives every storage alike.
 * - Changes to an active job are compare-and-set on its lease token (fencing): an outcome or step
 *   presented with a token that no longer holds the job is refused (`lost`), never applied.
 * - `input`, `output` and step results are JSON text, encoded once by the queue.
 */
import type { ConcurrencySpec, DebounceSpec, ThrottleSpec } from '../flow/limits.js'
import type { JsonText } from '../json.js'

/** The states of a job. `completed`, `dead` and `cancelled` are terminal. */
export type JobStatus = 'pending' | 'active' | 'waiting' | 'completed' | 'dead' | 'cancelled'

/** Every job state, in lifecycle order. */
export const JOB_STATUSES: readonly JobStatus[] = [
	'pending',
	'active',
	'waiting',
	'completed',
	'dead',
	'cancelled',
]

/** Whether a status is terminal (the job will not run again unless replayed). */
export function isTerminal(status: JobStatus): boolean {
	return status === 'completed' || status === 'dead' || status === 'cancelled'
}

/** Who may enqueue a job while another with the same dedupe key exists. */
export type DedupeScope = 'pending' | 'pending+active'

/** The error of one failed attempt, as stored. */
export interface AttemptError {
	/** The attempt (1-based) that failed. */
	readonly attempt: number
	/** The error's class name, e.g. `TypeError`, `TimeoutError`. */
	readonly name: string
	readonly message: string
	readonly stack?: string
	/** The error's `code`, when it has one. */
	readonly code?: string
	/** When it failed (ms since epoch). */
	readonly at: number
}

/** A job's lease: who holds it, with which fencing token, until when. */
export interface Lease {
	readonly owner: string
	readonly token: string
	readonly expiresAt: number
}

/** A job as stored. */
export interface JobRow {
	readonly id: string
	readonly name: string
	readonly input: JsonText
	readonly status: JobStatus
	/** Lower runs first. */
	readonly priority: number
	/** When the job may be claimed (pending) or woken (waiting with a timer); ms since epoch. */
	readonly runAt: number
	/** Attempts started so far (the current one included while active). */
	readonly attempt: number
	readonly maxAttempts: number
	readonly lease: Lease | null
	readonly dedupeKey: string | null
	readonly dedupeScope: DedupeScope | null
	readonly idempotencyKey: string | null
	/** The output of a completed job. */
	readonly output: JsonText | null
	/** One entry per failed attempt, oldest first. */
	readonly errors: readonly AttemptError[]
	/** Lines written with `ctx.log`, oldest first (bounded). */
	readonly logs: readonly string[]
	/** The job that started this one as a child, if any. */
	readonly parentId: string | null
	/** A retry policy given at enqueue (JSON of a duration, config or list), overriding the job's. */
	readonly backoff: JsonText | null
	readonly createdAt: number
	readonly updatedAt: number
	/** When the current or last attempt started. */
	readonly startedAt: number | null
	/** When the job reached a terminal state. */
	readonly finishedAt: number | null
}

/** A job to insert. */
export interface NewJob {
	/** Caller-chosen or generated id; an existing id makes the insert return that job (idempotent). */
	readonly id: string
	readonly name: string
	readonly input: JsonText
	readonly priority: number
	readonly runAt: number
	readonly maxAttempts: number
	readonly dedupeKey: string | null
	readonly dedupeScope: DedupeScope
	readonly idempotencyKey: string | null
	readonly parentId: string | null
	/** A retry policy given at enqueue (JSON), overriding the job's; null for the job's own. */
	readonly backoff: JsonText | null
	/**
	 * A concurrency limit kept with the job: `claim` skips it while its key is at the limit (jobs
	 * of the key running now, or starts in the window), counted over every process of the storage.
	 */
	readonly concurrency?: ConcurrencySpec | null
	/** Applied by `enqueue`, atomically with the insert (see `admitThrottle` in src/flow/limits.ts). */
	readonly throttle?: ThrottleSpec | null
	/** Applied by `enqueue`, atomically with the insert (see `decideDebounce` in src/flow/limits.ts). */
	readonly debounce?: DebounceSpec | null
	/**
	 * A schedule tick: insert only if no tick at or after `at` was inserted for `key` before
	 * (else `existing`), and remember `at` as the key's latest tick, even after the job is pruned.
	 */
	readonly tick?: { readonly key: string; readonly at: number } | null
}

/** What became of one job given to `enqueue`. */
export type EnqueueResult =
	/** Inserted. */
	| { readonly status: 'created'; readonly id: string }
	/** Same idempotency key (or same id) as a job kept already: that job's id, nothing inserted. */
	| { readonly status: 'existing'; readonly id: string }
	/** A job with the same dedupe key is pending (or active, per scope): nothing inserted. */
	| { readonly status: 'deduped'; readonly id: string }
	/** Over its throttle (mode `discard`): nothing inserted; `id` is the latest job let through, if kept. */
	| { readonly status: 'throttled'; readonly id: string | null }
	/** Debounced into the key's pending job `id`, which now has this input and a later runAt. */
	| { readonly status: 'debounced'; readonly id: string }

/** A job handed to a worker by `claim`, with the lease it now holds. */
export interface ClaimedJob {
	readonly id: string
	readonly name: string
	readonly input: JsonText
	/** This attempt's number, 1-based. */
	readonly attempt: number
	readonly maxAttempts: number
	readonly priority: number
	readonly parentId: string | null
	/** The retry policy given at enqueue, if any (JSON). */
	readonly backoff: JsonText | null
	readonly createdAt: number
	/**
	 * When the job became due (its `runAt` before this claim), for queue latency. Optional: a
	 * storage that leaves it out makes the queue fall back to `createdAt`.
	 */
	readonly runAt?: number
	readonly lease: Lease
}

/** How a worker ends its hold on an active job. Each presents the lease token of its claim. */
export type Outcome =
	/** The handler succeeded. */
	| {
			readonly kind: 'completed'
			readonly id: string
			readonly token: string
			readonly output: JsonText
			/** Delete the row at once instead of keeping it for its retention period. */
			readonly remove?: boolean
			/**
			 * Jobs to enqueue in the same transaction, only if the completion is applied (triggers):
			 * a crash can lose neither the completion without them nor them without it.
			 */
			readonly followUps?: readonly NewJob[]
			/**
			 * An event to publish in the same transaction (see `publish`), so a job waiting with
			 * `job.waitFor` never misses a completion, even if this process dies right after.
			 */
			readonly event?: PublishedEvent
	  }
	/** The attempt failed and attempts are left: pending again at `runAt`. */
	| {
			readonly kind: 'retry'
			readonly id: string
			readonly token: string
			readonly error: AttemptError
			readonly runAt: number
	  }
	/** The attempt failed and no attempt is left (or the error was fatal). */
	| { readonly kind: 'dead'; readonly id: string; readonly token: string; readonly error: AttemptError }
	/**
	 * The handler waits (sleep, child jobs, an event): `waiting` with no lease. The attempt is given
	 * back. It wakes at `wakeAt` (null: only when woken by `wake`). If one of `children` is already
	 * terminal (or gone), or one of `waiters` already holds an event, what it waits for came while it
	 * ran: it goes to pending at once instead (no wake-up is lost to that race).
	 */
	| {
			readonly kind: 'suspended'
			readonly id: string
			readonly token: string
			readonly wakeAt: number | null
			/** Child job ids the handler waits on. */
			readonly children?: readonly string[]
			/** Waiter ids the handler waits on. */
			readonly waiters?: readonly string[]
	  }
	/** The worker shut down before the handler finished: pending again, the attempt given back. */
	| { readonly kind: 'released'; readonly id: string; readonly token: string }

/** One settled outcome's result: applied, or refused because the token no longer holds the job. */
export interface SettleResult {
	readonly id: string
	readonly ok: boolean
}

/** What to claim in `settleAndClaim`: `claim`'s params, whose `now` is the settle's. */
export interface ClaimRequest {
	readonly names: readonly string[]
	readonly owner: string
	readonly limit: number
	readonly leaseMs: number
}

/** What `settleAndClaim` did: each outcome's result, in order, then the jobs claimed. */
export interface SettleAndClaimResult {
	readonly settled: SettleResult[]
	readonly claimed: ClaimedJob[]
}

/** What `enqueueAndClaim` did: each job's enqueue result, in order, then the jobs claimed. */
export interface EnqueueAndClaimResult {
	readonly results: EnqueueResult[]
	readonly claimed: ClaimedJob[]
}

/** The recorded state of one durable step. */
export type StepState = 'started' | 'completed' | 'failed'

/** A durable step of a job: `ctx.run` results and `ctx.runOnce` intents. */
export interface StepRow {
	readonly jobId: string
	/** Unique within the job, deterministic across replays (e.g. `run:fetch`, `once:smtp`). */
	readonly stepId: string
	/** The user's name for the step. */
	readonly name: string
	readonly state: StepState
	/**
	 * The step's position among the durable calls of a run (0-based, in call order), used to catch
	 * a replay that meets a different step where this one stood. Null for records without one.
	 */
	readonly index: number | null
	readonly output: JsonText | null
	readonly error: AttemptError | null
	readonly createdAt: number
	readonly updatedAt: number
}

/**
 * An event sent to waiters: a job's completion (topic `job:<name>`, subject its input) or a pipe's
 * message (topic `pipe:<name>`). `subject` is what waiters' patterns are matched against;
 * `payload` is what they receive.
 */
export interface PublishedEvent {
	readonly topic: string
	readonly subject: JsonText
	readonly payload: JsonText
	/**
	 * Set on a job's own completion event (topic `job:<name>`, subject the job's input, payload
	 * `{"input": <input>, "output": <output>}`): a storage may build it from the row it completes
	 * (only where a waiter wants it) instead of reading `subject` and `payload` for every job.
	 */
	readonly completion?: true
}

/** A job waiting for events (`job.waitFor`, `pipe.waitFor`) inside its handler. */
export interface WaiterRow {
	/** Deterministic: the waiting job's id and the call's index. */
	readonly id: string
	/** The waiting job. */
	readonly jobId: string
	readonly topic: string
	/**
	 * A JSON pattern the event's subject must contain (see `matchesPattern`); null takes every
	 * event of the topic (a predicate checks them in the handler).
	 */
	readonly match: JsonText | null
	/** Payloads of the matching events received and not yet trimmed, oldest first. */
	readonly events: readonly JsonText[]
	readonly createdAt: number
}

/** Counts of jobs by state. */
export type StatusCounts = Record<JobStatus, number>

/** Counts by state, in all and for each job name. */
export interface QueueStats {
	readonly total: StatusCounts
	readonly byName: Readonly<Record<string, StatusCounts>>
}

/** A page of jobs, newest first. */
export interface JobPage {
	readonly jobs: readonly JobRow[]
	/** Pass it back as `cursor` for the next page; null when there is none. */
	readonly nextCursor: string | null
}

/** What `cancel` did. */
export type CancelResult =
	| { readonly status: 'cancelled'; readonly previous: 'pending' | 'active' | 'waiting' }
	| { readonly status: 'finished'; readonly current: 'completed' | 'dead' | 'cancelled' }
	| { readonly status: 'not-found' }

/** What `claimOrEnqueue` did. */
export type ClaimOrEnqueueResult =
	/** This caller holds the job now (an existing pending one, or a new one). */
	| { readonly status: 'claimed'; readonly job: ClaimedJob }
	/** One with the key is active: a new one was queued behind it (scope `pending` only). */
	| { readonly status: 'enqueued'; readonly id: string }
	/** Nothing to do: one with the key is already pending behind an active one, or active. */
	| { readonly status: 'deduped'; readonly id: string }

/** What a storage can do beyond the contract; the worker adapts, it never asks which storage. */
export interface StorageCapabilities {
	/**
	 * Other processes see new jobs through `subscribe` (e.g. PostgreSQL LISTEN/NOTIFY). Without it
	 * a worker is woken by enqueues in its own process and polls for the rest.
	 */
	readonly push: boolean
	/** Several processes may share this storage at once. */
	readonly multiProcess: boolean
	/**
	 * `enqueue` accepts `tx`, the caller's own open transaction (e.g. a `pg` client after BEGIN), and
	 * inserts inside it: the jobs exist only if that transaction commits. Absent means false.
	 */
	readonly transactionalEnqueue?: boolean
}

/** The contract. See the file's header for the rules every implementation keeps. */
export interface Storage {
	/** A short name for logs and errors, e.g. `sqlite:/path/to/file.db`. */
	readonly description: string
	readonly capabilities: StorageCapabilities

	/**
	 * Push wake-ups, for storages with `capabilities.push`: calls `listener` when jobs may have
	 * become claimable in another process (e.g. PostgreSQL NOTIFY after an enqueue). Returns an
	 * unsubscribe function. Polling stays the backstop, so a missed call delays, never loses.
	 */
	subscribe?(listener: () => void): () => void

	/** Opens and migrates. Idempotent; every other method may be called only after it resolved. */
	open(): Promise<void>
	/** Releases files, connections and timers. Safe to call twice or before `open`. */
	close(): Promise<void>

	/**
	 * Inserts jobs in one round trip, applying idempotency keys and dedupe keys atomically. `tx`, only
	 * for storages with `capabilities.transactionalEnqueue`, is the caller's open transaction to
	 * insert in (the queue never passes it to other storages).
	 */
	enqueue(params: {
		readonly jobs: readonly NewJob[]
		readonly now: number
		readonly tx?: unknown
	}): Promise<EnqueueResult[]>

	/**
	 * Optional: `enqueue`, then `claim`, as one call: one transaction and one commit. A process
	 * whose own worker has free slots enqueues with it, so a job it enqueues can start after that
	 * one commit instead of two (the enqueue's, then the worker's claim). The claim is an ordinary
	 * claim (claim order, single-flight, concurrency keys, paused names): it may take older due jobs
	 * rather than the ones just enqueued. Never given a `tx`.
	 */
	enqueueAndClaim?(params: {
		readonly jobs: readonly NewJob[]
		readonly now: number
		readonly claim: ClaimRequest
	}): Promise<EnqueueAndClaimResult>

	/**
	 * Moves up to `limit` due pending jobs of the given names to active under a new lease, in claim
	 * order: priority, then runAt, then enqueue order. A pending job whose dedupe key belongs to an
	 * active job is skipped (single-flight). Waiting jobs of those names whose wake time has come
	 * are woken first (so a sleeper is claimable as soon as it is due, without waiting for `reap`).
	 */
	claim(params: {
		readonly names: readonly string[]
		readonly owner: string
		readonly limit: number
		readonly leaseMs: number
		readonly now: number
	}): Promise<ClaimedJob[]>

	/**
	 * Atomically: claim the pending job with this dedupe key if none is active; else queue one
	 * behind the active one (scope `pending`) unless one already waits; else insert the job already
	 * claimed by `owner`.
	 */
	claimOrEnqueue(params: {
		readonly job: NewJob & { readonly dedupeKey: string }
		readonly owner: string
		readonly leaseMs: number
		readonly now: number
	}): Promise<ClaimOrEnqueueResult>

	/** Extends leases still held under these tokens. Returns the ids whose lease is lost. */
	heartbeat(params: {
		readonly leases: readonly { readonly id: string; readonly token: string }[]
		readonly leaseMs: number
		readonly now: number
	}): Promise<string[]>

	/**
	 * Applies outcomes in one round trip, each only if its token still holds the job. A job that
	 * reaches a terminal state wakes its parent if the parent is waiting.
	 */
	settle(params: {
		readonly outcomes: readonly Outcome[]
		/** `ctx.log` lines to append, per job id. */
		readonly logs?: ReadonlyMap<string, readonly string[]>
		readonly now: number
	}): Promise<SettleResult[]>

	/**
	 * Optional: `settle`, then `claim`, as one call: one transaction and one commit where the storage
	 * has them, so a worker hands back finished jobs and takes the next ones in one round trip. The
	 * same rules as the two calls, and the claim sees the settle's changes (a completed job no longer
	 * holds its dedupe key). A storage without it gets the two calls; the worker works either way.
	 */
	settleAndClaim?(params: {
		readonly outcomes: readonly Outcome[]
		readonly logs?: ReadonlyMap<string, readonly string[]>
		readonly now: number
		readonly claim: ClaimRequest
	}): Promise<SettleAndClaimResult>

	/**
	 * Maintenance, safe to run in every process at once: active jobs whose lease expired go back to
	 * pending (the attempt stays counted), or to dead when no attempt is left; waiting jobs whose
	 * wake time has come go to pending. Returns the ids moved.
	 */
	reap(params: { readonly now: number; readonly limit: number }): Promise<{
		readonly requeued: string[]
		readonly dead: string[]
		readonly woken: string[]
	}>

	/** Moves waiting jobs to pending now (a child finished, an event came). Returns those woken. */
	wake(params: { readonly ids: readonly string[]; readonly now: number }): Promise<string[]>

	/** Cancels a job that is not terminal. An active job loses its lease at once (fencing). */
	cancel(params: { readonly id: string; readonly now: number }): Promise<CancelResult>

	/** Moves dead jobs back to pending with their attempts reset. By ids, or every dead job of a name. */
	replay(
		params: ({ readonly ids: readonly string[] } | { readonly name: string }) & { readonly now: number },
	): Promise<string[]>

	/** Deletes terminal jobs that finished before `before`, at most `limit`. Returns how many. */
	prune(params: {
		readonly statuses: readonly ('completed' | 'dead' | 'cancelled')[]
		readonly before: number
		readonly limit: number
		readonly name?: string
	}): Promise<number>

	/** Pauses (claims skip the name, in every process) or resumes a job name. Durable. */
	setPaused(params: { readonly name: string; readonly paused: boolean; readonly now: number }): Promise<void>
	/** The paused job names, sorted. */
	listPaused(): Promise<string[]>
	/** The latest schedule tick enqueued for a key (see `NewJob.tick`), or null. */
	lastTick(params: { readonly key: string }): Promise<number | null>

	getJob(params: { readonly id: string }): Promise<JobRow | null>
	listJobs(params: {
		readonly name?: string
		readonly status?: JobStatus
		readonly parentId?: string
		readonly limit: number
		readonly cursor?: string | null
	}): Promise<JobPage>
	getStats(params: { readonly name?: string }): Promise<QueueStats>

	/** The recorded steps of a job, in the order they were first recorded. */
	getSteps(params: { readonly jobId: string }): Promise<StepRow[]>
	/**
	 * Records a step's state, only while `token` holds the job (fencing). A `completed` step is
	 * final: later writes for it are ignored (a `failed` one may be started again). Returns false
	 * if the lease is lost.
	 */
	saveStep(params: {
		readonly jobId: string
		readonly token: string
		readonly stepId: string
		readonly name: string
		readonly state: StepState
		/** The step's call index (see StepRow.index); kept from the first write. */
		readonly index?: number | null
		readonly output: JsonText | null
		readonly error: AttemptError | null
		readonly now: number
	}): Promise<boolean>

	/**
	 * Registers a waiter, only while `token` holds its job (fencing). An existing waiter with the id
	 * is kept as it is (idempotent across replays). Returns false if the lease is lost.
	 */
	addWaiter(params: {
		readonly waiter: {
			readonly id: string
			readonly jobId: string
			readonly topic: string
			readonly match: JsonText | null
		}
		readonly token: string
		readonly now: number
	}): Promise<boolean>
	/** A waiter with its received events, or null. */
	getWaiter(params: { readonly id: string }): Promise<WaiterRow | null>
	/** Drops the oldest `drop` events of a waiter (checked and not wanted), or the whole waiter. */
	trimWaiter(params: { readonly id: string; readonly drop: number | 'all' }): Promise<void>
	/**
	 * Appends an event to every waiter of its topic whose pattern matches its subject, and wakes
	 * their jobs if they are waiting. Waiters of finished jobs get nothing. Returns the job ids woken.
	 */
	publish(params: { readonly event: PublishedEvent; readonly now: number }): Promise<string[]>
}

/**
 * Whether `value` contains `pattern` (PostgreSQL's jsonb `@>`): every key of a pattern object is
 * in the value and matches recursively; every element of a pattern array matches some element of
 * the value array; scalars are equal. `{ user: { id: 1 } }` matches
 * `{ user: { id: 1, name: 'a' }, x: 2 }`.
 */
export function matchesPattern(pattern: unknown, value: unknown): boolean {
	if (pattern === null || typeof pattern !== 'object') return pattern === value
	if (Array.isArray(pattern)) {
		if (!Array.isArray(value)) return false
		return pattern.every((p) => value.some((v) => matchesPattern(p, v)))
	}
	if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
	const v = value as Record<string, unknown>
	for (const [key, p] of Object.entries(pattern as Record<string, unknown>)) {
		if (!(key in v) || !matchesPattern(p, v[key])) return false
	}
	return true
}

/** Zero counts for every status. */
export function emptyCounts(): StatusCounts {
	return { pending: 0, active: 0, waiting: 0, completed: 0, dead: 0, cancelled: 0 }
}
