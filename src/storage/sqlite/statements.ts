/**
 * Every SQL statement of the SQLite storage, one named statement each, prepared once at open.
 * Named parameters (`@name`) say what each takes; positional ones (`?`) are listed in its comment.
 */
import type { JobStatus, StepState } from '../contract.js'

/** A row of spool_jobs as the driver returns it. */
export interface JobRecord {
	seq: number
	id: string
	name: string
	input: string
	status: JobStatus
	priority: number
	run_at: number
	attempt: number
	max_attempts: number
	lease_owner: string | null
	lease_token: string | null
	lease_expires_at: number | null
	dedupe_key: string | null
	dedupe_scope: string | null
	idempotency_key: string | null
	output: string | null
	errors: string
	logs: string
	parent_id: string | null
	backoff: string | null
	concurrency_key: string | null
	concurrency_limit: number | null
	concurrency_window: number | null
	concurrency_rolling: number | null
	created_at: number
	updated_at: number
	started_at: number | null
	finished_at: number | null
}

/** The columns of a claimed job (statements' CLAIMED). */
export type ClaimedRecord = Pick<
	JobRecord,
	| 'seq'
	| 'id'
	| 'name'
	| 'input'
	| 'attempt'
	| 'max_attempts'
	| 'priority'
	| 'parent_id'
	| 'backoff'
	| 'created_at'
	| 'run_at'
	| 'lease_owner'
	| 'lease_token'
	| 'lease_expires_at'
>

/** A row of spool_steps. */
export interface StepRecord {
	job_id: string
	step_id: string
	name: string
	state: StepState
	idx: number | null
	output: string | null
	error: string | null
	created_at: number
	updated_at: number
}

/** A row of spool_waiters. */
export interface WaiterRecord {
	id: string
	job_id: string
	topic: string
	match: string | null
	events: string
	created_at: number
}

const CLEAR_LEASE = 'lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL'
const HELD = "id = @id AND status = 'active' AND lease_token = @token"

/** The columns a claim returns: what a ClaimedJob needs, and claim order. */
const CLAIMED = `seq, id, name, input, attempt, max_attempts, priority, parent_id, backoff, created_at, run_at,
		lease_owner, lease_token, lease_expires_at`

/**
 * A claimable job `j`: due, pending, of the name `@name`, not paused, its dedupe key (if any) not
 * held by an active job (single-flight), its concurrency key (if any) not at its limit (running
 * jobs, or a full window). One name at a time, so the walk is a seek into spool_jobs_claim_name
 * (name, priority, run_at, seq) in claim order: other names' jobs cost nothing. The holder check
 * repeats the dedupe index's condition so SQLite can use that index for it.
 */
const CANDIDATE = `name = @name AND status = 'pending' AND run_at <= @now
			AND NOT EXISTS (SELECT 1 FROM spool_paused AS p WHERE p.name = @name)
			AND (dedupe_key IS NULL OR NOT EXISTS (
				SELECT 1 FROM spool_jobs AS a
				WHERE a.name = j.name AND a.dedupe_key = j.dedupe_key AND a.status = 'active'
					AND a.dedupe_key IS NOT NULL AND a.status IN ('pending', 'active')))
			AND (concurrency_key IS NULL
				OR (concurrency_window IS NULL AND (
					SELECT count(*) FROM spool_jobs AS c
					WHERE c.concurrency_key = j.concurrency_key AND c.status = 'active') < concurrency_limit)
				OR (concurrency_window IS NOT NULL AND NOT EXISTS (
					SELECT 1 FROM spool_flow AS f WHERE f.key = 'c:' || j.concurrency_key AND f.until > @now)))`

export const SQL = {
	/** ? = id */
	idById: 'SELECT id FROM spool_jobs WHERE id = ?',
	/** ? = name, idempotency key */
	idByIdempotency: 'SELECT id FROM spool_jobs WHERE name = ? AND idempotency_key = ?',
	/** ? = name, dedupe key: the live jobs holding the key. */
	dedupeHolders: `SELECT id, status FROM spool_jobs
		WHERE name = ? AND dedupe_key = ? AND status IN ('pending', 'active') ORDER BY seq`,
	insert: `INSERT INTO spool_jobs (id, name, input, status, priority, run_at, attempt, max_attempts,
		lease_owner, lease_token, lease_expires_at, dedupe_key, dedupe_scope, idempotency_key, parent_id,
		backoff, concurrency_key, concurrency_limit, concurrency_window, concurrency_rolling,
		created_at, updated_at, started_at)
		VALUES (@id, @name, @input, @status, @priority, @run_at, @attempt, @max_attempts,
		@lease_owner, @lease_token, @lease_expires_at, @dedupe_key, @dedupe_scope, @idempotency_key, @parent_id,
		@backoff, @concurrency_key, @concurrency_limit, @concurrency_window, @concurrency_rolling,
		@now, @now, @started_at)`,
	/**
	 * A plain job's insert (no keys, no flow options, not leased): a job kept under its id already
	 * makes no change (`changes` 0), which spares a lookup by id before each insert.
	 */
	insertPlain: `INSERT INTO spool_jobs (id, name, input, status, priority, run_at, max_attempts,
		parent_id, backoff, created_at, updated_at)
		VALUES (@id, @name, @input, 'pending', @priority, @run_at, @max_attempts, @parent_id, @backoff, @now, @now)
		ON CONFLICT (id) DO NOTHING`,
	/**
	 * The first pass of a claim of one name, one statement: of the first `@limit` due pending jobs
	 * of `@name` (not paused) in claim order, those without a dedupe or concurrency key (always
	 * claimable) to active under the lease. The keyed ones among them, if any, are left to
	 * claimCandidates' passes (keyedDue says whether there are any). Jobs without keys, the common
	 * case, are claimed by this alone, without the per-key checks.
	 */
	claimFast: `UPDATE spool_jobs SET status = 'active', attempt = attempt + 1, lease_owner = @owner,
		lease_token = @token, lease_expires_at = @expires, started_at = @now, updated_at = @now
		WHERE seq IN (SELECT seq FROM spool_jobs
				WHERE name = @name AND status = 'pending' AND run_at <= @now
					AND NOT EXISTS (SELECT 1 FROM spool_paused AS p WHERE p.name = @name)
				ORDER BY priority, run_at, seq LIMIT @limit)
			AND dedupe_key IS NULL AND concurrency_key IS NULL
		RETURNING ${CLAIMED}`,
	/** Whether `@name` has a due pending job with a dedupe or concurrency key (spool_jobs_keyed). */
	keyedDue: `SELECT 1 FROM spool_jobs WHERE name = @name AND status = 'pending' AND run_at <= @now
		AND (dedupe_key IS NOT NULL OR concurrency_key IS NOT NULL) LIMIT 1`,
	/**
	 * The first `@limit` candidates of `@name` in claim order. A claim of several names merges
	 * theirs; it then takes at most one job per concurrency key per pass, so a pass never overshoots
	 * a limit.
	 */
	claimCandidates: `SELECT seq, priority, run_at, concurrency_key, concurrency_limit, concurrency_window, concurrency_rolling
		FROM spool_jobs AS j WHERE ${CANDIDATE}
		ORDER BY priority, run_at, seq LIMIT @limit`,
	/** The chosen candidates (seqs, a JSON array) to active under the lease. */
	claimSeqs: `UPDATE spool_jobs SET status = 'active', attempt = attempt + 1, lease_owner = @owner,
		lease_token = @token, lease_expires_at = @expires, started_at = @now, updated_at = @now
		WHERE seq IN (SELECT value FROM json_each(@seqs)) AND status = 'pending'
		RETURNING ${CLAIMED}`,
	/** ? = key */
	getFlow: 'SELECT state FROM spool_flow WHERE key = ?',
	setFlow: `INSERT INTO spool_flow (key, state, until) VALUES (@key, @state, @until)
		ON CONFLICT (key) DO UPDATE SET state = excluded.state, until = excluded.until`,
	/** Debounce: a pending job takes a new input and runAt. */
	replacePending: `UPDATE spool_jobs SET input = @input, run_at = @run_at, updated_at = @now
		WHERE id = @id AND status = 'pending'`,
	pause: 'INSERT OR IGNORE INTO spool_paused (name, paused_at) VALUES (@name, @now)',
	/** ? = name */
	resume: 'DELETE FROM spool_paused WHERE name = ?',
	listPaused: 'SELECT name FROM spool_paused ORDER BY name',
	claimById: `UPDATE spool_jobs SET status = 'active', attempt = attempt + 1, lease_owner = @owner,
		lease_token = @token, lease_expires_at = @expires, started_at = @now, updated_at = @now
		WHERE id = @id AND status = 'pending' RETURNING *`,
	/** ? = expires, now, id, token */
	heartbeat: `UPDATE spool_jobs SET lease_expires_at = ?, updated_at = ?
		WHERE id = ? AND status = 'active' AND lease_token = ?`,
	/** ? = id */
	getLogs: 'SELECT logs FROM spool_jobs WHERE id = ?',
	/** ? = logs (JSON array), id */
	setLogs: 'UPDATE spool_jobs SET logs = ? WHERE id = ?',
	complete: `UPDATE spool_jobs SET status = 'completed', output = @output, finished_at = @now, updated_at = @now,
		${CLEAR_LEASE} WHERE ${HELD} RETURNING parent_id`,
	completeDelete: `DELETE FROM spool_jobs WHERE ${HELD} RETURNING parent_id`,
	retry: `UPDATE spool_jobs SET status = 'pending', run_at = @run_at, updated_at = @now,
		errors = json_insert(errors, '$[#]', json(@error)), ${CLEAR_LEASE} WHERE ${HELD} RETURNING parent_id`,
	dead: `UPDATE spool_jobs SET status = 'dead', finished_at = @now, updated_at = @now,
		errors = json_insert(errors, '$[#]', json(@error)), ${CLEAR_LEASE} WHERE ${HELD} RETURNING parent_id`,
	suspend: `UPDATE spool_jobs SET status = 'waiting', attempt = attempt - 1, run_at = @run_at, updated_at = @now,
		${CLEAR_LEASE} WHERE ${HELD}`,
	release: `UPDATE spool_jobs SET status = 'pending', attempt = attempt - 1, run_at = @now, updated_at = @now,
		${CLEAR_LEASE} WHERE ${HELD}`,
	/** A waiting job to pending, now. */
	wake: `UPDATE spool_jobs SET status = 'pending', run_at = @now, updated_at = @now
		WHERE id = @id AND status = 'waiting'`,
	/** ? = now, limit */
	expired: `SELECT id, attempt, max_attempts, lease_owner, parent_id FROM spool_jobs
		WHERE status = 'active' AND lease_expires_at <= ? ORDER BY lease_expires_at LIMIT ?`,
	reapRequeue: `UPDATE spool_jobs SET status = 'pending', run_at = @now, updated_at = @now,
		errors = json_insert(errors, '$[#]', json(@error)), ${CLEAR_LEASE} WHERE id = @id AND status = 'active'`,
	reapDead: `UPDATE spool_jobs SET status = 'dead', finished_at = @now, updated_at = @now,
		errors = json_insert(errors, '$[#]', json(@error)), ${CLEAR_LEASE} WHERE id = @id AND status = 'active'`,
	wakeDue: `UPDATE spool_jobs SET status = 'pending', run_at = @now, updated_at = @now
		WHERE seq IN (SELECT seq FROM spool_jobs WHERE status = 'waiting' AND run_at <= @now ORDER BY run_at LIMIT @limit)
		RETURNING id`,
	/** ? = id */
	statusOf: 'SELECT status, parent_id FROM spool_jobs WHERE id = ?',
	cancel: `UPDATE spool_jobs SET status = 'cancelled', finished_at = @now, updated_at = @now, ${CLEAR_LEASE}
		WHERE id = @id`,
	replayIds: `UPDATE spool_jobs SET status = 'pending', attempt = 0, run_at = @now, finished_at = NULL, updated_at = @now
		WHERE status = 'dead' AND id IN (SELECT value FROM json_each(@ids)) RETURNING id, seq`,
	replayName: `UPDATE spool_jobs SET status = 'pending', attempt = 0, run_at = @now, finished_at = NULL, updated_at = @now
		WHERE status = 'dead' AND name = @name RETURNING id, seq`,
	prune: `DELETE FROM spool_jobs WHERE seq IN (
		SELECT seq FROM spool_jobs WHERE status IN (SELECT value FROM json_each(@statuses))
			AND finished_at < @before AND (@name IS NULL OR name = @name) LIMIT @limit)`,
	/** ? = id */
	getJob: 'SELECT * FROM spool_jobs WHERE id = ?',
	listJobs: `SELECT * FROM spool_jobs WHERE seq < @below
		AND (@name IS NULL OR name = @name) AND (@status IS NULL OR status = @status)
		AND (@parent IS NULL OR parent_id = @parent)
		ORDER BY seq DESC LIMIT @limit`,
	stats: `SELECT name, status, count(*) AS n FROM spool_jobs WHERE @name IS NULL OR name = @name
		GROUP BY name, status`,
	/** ? = job id */
	getSteps: 'SELECT * FROM spool_steps WHERE job_id = ? ORDER BY seq',
	/** ? = job id, token */
	holds: "SELECT 1 FROM spool_jobs WHERE id = ? AND status = 'active' AND lease_token = ?",
	saveStep: `INSERT INTO spool_steps (job_id, step_id, seq, name, state, idx, output, error, created_at, updated_at)
		VALUES (@job_id, @step_id, (SELECT coalesce(max(seq), 0) + 1 FROM spool_steps WHERE job_id = @job_id),
			@name, @state, @idx, @output, @error, @now, @now)
		ON CONFLICT (job_id, step_id) DO UPDATE SET state = excluded.state, output = excluded.output,
			error = excluded.error, updated_at = excluded.updated_at
		WHERE spool_steps.state != 'completed'`,
	/** Due waiting jobs of the names (a JSON array) to pending, before a claim. */
	wakeDueNames: `UPDATE spool_jobs SET status = 'pending', run_at = @now, updated_at = @now
		WHERE status = 'waiting' AND run_at <= @now AND name IN (SELECT value FROM json_each(@names))`,
	/** A suspend whose awaited child already finished (or is gone) or whose waiter holds an event. */
	arrived: `SELECT 1 WHERE EXISTS (
			SELECT 1 FROM json_each(@children) AS c
			WHERE NOT EXISTS (SELECT 1 FROM spool_jobs WHERE id = c.value
				AND status IN ('pending', 'active', 'waiting')))
		OR EXISTS (SELECT 1 FROM spool_waiters WHERE id IN (SELECT value FROM json_each(@waiters))
			AND events != '[]')`,
	addWaiter: `INSERT INTO spool_waiters (id, job_id, topic, match, events, created_at)
		VALUES (@id, @job_id, @topic, @match, '[]', @now) ON CONFLICT (id) DO NOTHING`,
	/** ? = id */
	getWaiter: 'SELECT * FROM spool_waiters WHERE id = ?',
	/** ? = events (JSON array), id */
	setWaiterEvents: 'UPDATE spool_waiters SET events = ? WHERE id = ?',
	/** ? = id */
	deleteWaiter: 'DELETE FROM spool_waiters WHERE id = ?',
	/** ? = topic: waiters of live jobs. */
	waitersOf: `SELECT w.id, w.job_id, w.match, w.events FROM spool_waiters AS w
		JOIN spool_jobs AS j ON j.id = w.job_id
		WHERE w.topic = ? AND j.status IN ('pending', 'active', 'waiting')`,
} as const
