/**
 * The SQLite schema, as numbered migrations. Each runs once, in order, inside an IMMEDIATE
 * transaction, so several processes opening one file at once migrate it exactly once.
 * test/sqlite/schema.snapshot.sql holds the resulting schema; a test compares them, so a change
 * here shows in review.
 */

/** The newest schema version this code knows. A file with a newer one is refused. */
export const SCHEMA_VERSION = 5

/** Migration N brings the schema from version N-1 to N. */
export const MIGRATIONS: readonly string[] = [
	// 1: jobs, steps, meta.
	`
CREATE TABLE spool_jobs (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  input TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'waiting', 'completed', 'dead', 'cancelled')),
  priority INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  lease_owner TEXT,
  lease_token TEXT,
  lease_expires_at INTEGER,
  dedupe_key TEXT,
  dedupe_scope TEXT,
  idempotency_key TEXT,
  output TEXT,
  errors TEXT NOT NULL DEFAULT '[]',
  logs TEXT NOT NULL DEFAULT '[]',
  parent_id TEXT,
  backoff TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER
);
-- Claims walk this in claim order; only pending rows are in it, so finished rows cost nothing.
CREATE INDEX spool_jobs_claim ON spool_jobs (priority, run_at, seq) WHERE status = 'pending';
-- The reaper's expired leases and the wake-ups of sleeping jobs.
CREATE INDEX spool_jobs_lease ON spool_jobs (lease_expires_at) WHERE status = 'active';
CREATE INDEX spool_jobs_waiting ON spool_jobs (run_at) WHERE status = 'waiting';
-- Dedupe keys of live jobs, and the single-flight check in claims.
CREATE INDEX spool_jobs_dedupe ON spool_jobs (name, dedupe_key, status)
  WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'active');
CREATE UNIQUE INDEX spool_jobs_idempotency ON spool_jobs (name, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX spool_jobs_finished ON spool_jobs (status, finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX spool_jobs_parent ON spool_jobs (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE spool_steps (
  job_id TEXT NOT NULL,
  step_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  name TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('started', 'completed', 'failed')),
  output TEXT,
  error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (job_id, step_id)
) WITHOUT ROWID;

-- A job's steps go with it.
CREATE TRIGGER spool_jobs_delete_steps AFTER DELETE ON spool_jobs
BEGIN
  DELETE FROM spool_steps WHERE job_id = OLD.id;
END;
`,
	// 2: flow control: concurrency keys on jobs, per-key flow state, paused names.
	`
ALTER TABLE spool_jobs ADD COLUMN concurrency_key TEXT;
ALTER TABLE spool_jobs ADD COLUMN concurrency_limit INTEGER;
-- Null: a limit on jobs running at once. A number: a limit on starts per this many ms.
ALTER TABLE spool_jobs ADD COLUMN concurrency_window INTEGER;
ALTER TABLE spool_jobs ADD COLUMN concurrency_rolling INTEGER;
-- Claims count the running jobs of a key.
CREATE INDEX spool_jobs_concurrency ON spool_jobs (concurrency_key, status) WHERE concurrency_key IS NOT NULL;

-- Small per-key state of throttles, debounces, concurrency windows and schedule ticks (JSON).
-- until: for a concurrency window, the time before which the key is full (claims skip it).
CREATE TABLE spool_flow (
  key TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  until INTEGER
) WITHOUT ROWID;

CREATE TABLE spool_paused (
  name TEXT PRIMARY KEY,
  paused_at INTEGER NOT NULL
) WITHOUT ROWID;
`,
	// 3: durable execution: step call indexes (non-determinism checks) and waiters (waitFor).
	`
ALTER TABLE spool_steps ADD COLUMN idx INTEGER;

CREATE TABLE spool_waiters (
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  match TEXT,
  events TEXT NOT NULL DEFAULT '[]',
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX spool_waiters_topic ON spool_waiters (topic);
CREATE INDEX spool_waiters_job ON spool_waiters (job_id);

-- A job's waiters go with it.
CREATE TRIGGER spool_jobs_delete_waiters AFTER DELETE ON spool_jobs
BEGIN
  DELETE FROM spool_waiters WHERE job_id = OLD.id;
END;
`,
	// 4: claims walk pending jobs one name at a time, in claim order: a worker's claim no longer
	// steps over the pending jobs of names it does not run, nor (within a priority) over jobs
	// scheduled for later.
	`
CREATE INDEX spool_jobs_claim_name ON spool_jobs (name, priority, run_at, seq) WHERE status = 'pending';
DROP INDEX spool_jobs_claim;
`,
	// 5: pending jobs with a dedupe or concurrency key, so a claim knows in one seek whether it
	// needs the per-key checks (most queues have no such job, and this index stays empty).
	`
CREATE INDEX spool_jobs_keyed ON spool_jobs (name, priority, run_at, seq)
  WHERE status = 'pending' AND (dedupe_key IS NOT NULL OR concurrency_key IS NOT NULL);
`,
]
