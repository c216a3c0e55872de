-- Migration 1: jobs, steps, the enqueue function and the wake-up trigger.
-- {{schema}} is replaced by the storage's schema name (checked to be a plain identifier).

CREATE TABLE {{schema}}.jobs (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL UNIQUE,
  name text NOT NULL,
  input text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'active', 'waiting', 'completed', 'dead', 'cancelled')),
  priority integer NOT NULL,
  run_at bigint NOT NULL,
  attempt integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL,
  lease_owner text,
  lease_token text,
  lease_expires_at bigint,
  dedupe_key text,
  dedupe_scope text CHECK (dedupe_scope IN ('pending', 'pending+active')),
  idempotency_key text,
  output text,
  errors jsonb NOT NULL DEFAULT '[]',
  logs jsonb NOT NULL DEFAULT '[]',
  parent_id text,
  backoff text,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  started_at bigint,
  finished_at bigint
) WITH (fillfactor = 80);

-- Claims walk this in claim order. Only pending rows are in it, so finished rows cost a claim nothing.
CREATE INDEX jobs_claim ON {{schema}}.jobs (priority, run_at, seq) WHERE status = 'pending';
-- The reaper's expired leases.
CREATE INDEX jobs_lease ON {{schema}}.jobs (lease_expires_at) WHERE status = 'active';
-- Waiting jobs whose wake time comes.
CREATE INDEX jobs_waiting ON {{schema}}.jobs (run_at) WHERE status = 'waiting';
-- Dedupe keys of live jobs, and the single-flight check in claims.
CREATE INDEX jobs_dedupe ON {{schema}}.jobs (name, dedupe_key, status)
  WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'active');
CREATE UNIQUE INDEX jobs_idempotency ON {{schema}}.jobs (name, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Pruning, oldest finished first.
CREATE INDEX jobs_finished ON {{schema}}.jobs (status, finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_parent ON {{schema}}.jobs (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE {{schema}}.steps (
  job_id text NOT NULL REFERENCES {{schema}}.jobs (id) ON DELETE CASCADE,
  step_id text NOT NULL,
  seq integer NOT NULL,
  name text NOT NULL,
  state text NOT NULL CHECK (state IN ('started', 'completed', 'failed')),
  output text,
  error jsonb,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (job_id, step_id)
);

-- Enqueues one job that carries an id, idempotency key or dedupe key to check, atomically: the
-- keys of one (name, key) are serialized by a transaction-scoped advisory lock, so two processes
-- enqueueing the same key at once make one job. With p_lease_token, the job is inserted already
-- claimed (claimOrEnqueue). Returns 'created', 'existing' or 'deduped' with the job's id.
CREATE FUNCTION {{schema}}.enqueue_one(
  p_id text, p_name text, p_input text, p_priority integer, p_run_at bigint, p_max_attempts integer,
  p_dedupe_key text, p_dedupe_scope text, p_idempotency_key text, p_parent_id text, p_backoff text,
  p_now bigint, p_lease_owner text, p_lease_token text, p_lease_expires_at bigint,
  OUT status text, OUT id text
) LANGUAGE plpgsql AS $$
DECLARE
  v_id text;
  v_active text;
BEGIN
  SELECT j.id INTO v_id FROM {{schema}}.jobs j WHERE j.id = p_id;
  IF FOUND THEN status := 'existing'; id := v_id; RETURN; END IF;
  IF p_idempotency_key IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('spool:i:' || p_name || ':' || p_idempotency_key, 0));
    SELECT j.id INTO v_id FROM {{schema}}.jobs j WHERE j.name = p_name AND j.idempotency_key = p_idempotency_key;
    IF FOUND THEN status := 'existing'; id := v_id; RETURN; END IF;
  END IF;
  IF p_dedupe_key IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('spool:d:' || p_name || ':' || p_dedupe_key, 0));
    SELECT j.id INTO v_id FROM {{schema}}.jobs j
      WHERE j.name = p_name AND j.dedupe_key = p_dedupe_key AND j.status = 'pending' ORDER BY j.seq LIMIT 1;
    IF FOUND THEN status := 'deduped'; id := v_id; RETURN; END IF;
    IF p_dedupe_scope = 'pending+active' THEN
      SELECT j.id INTO v_active FROM {{schema}}.jobs j
        WHERE j.name = p_name AND j.dedupe_key = p_dedupe_key AND j.status = 'active' ORDER BY j.seq LIMIT 1;
      IF FOUND THEN status := 'deduped'; id := v_active; RETURN; END IF;
    END IF;
  END IF;
  INSERT INTO {{schema}}.jobs AS j (id, name, input, status, priority, run_at, attempt, max_attempts,
    lease_owner, lease_token, lease_expires_at, dedupe_key, dedupe_scope, idempotency_key, parent_id,
    backoff, created_at, updated_at, started_at)
  VALUES (p_id, p_name, p_input, CASE WHEN p_lease_token IS NULL THEN 'pending' ELSE 'active' END,
    p_priority, p_run_at, CASE WHEN p_lease_token IS NULL THEN 0 ELSE 1 END, p_max_attempts,
    p_lease_owner, p_lease_token, p_lease_expires_at, p_dedupe_key,
    CASE WHEN p_dedupe_key IS NULL THEN NULL ELSE p_dedupe_scope END, p_idempotency_key, p_parent_id,
    p_backoff, p_now, p_now, CASE WHEN p_lease_token IS NULL THEN NULL ELSE p_now END)
  ON CONFLICT DO NOTHING;
  IF FOUND THEN status := 'created'; id := p_id; RETURN; END IF;
  -- Lost a race on the id (or the key) to another transaction: that job is the one.
  SELECT j.id INTO v_id FROM {{schema}}.jobs j
    WHERE j.id = p_id OR (p_idempotency_key IS NOT NULL AND j.name = p_name AND j.idempotency_key = p_idempotency_key)
    LIMIT 1;
  status := 'existing'; id := coalesce(v_id, p_id);
END
$$;

-- Workers LISTEN on the channel '{{channel}}': one notification per statement that inserts jobs,
-- delivered when its transaction commits (so a job enqueued inside a caller's transaction wakes
-- nobody before it exists).
CREATE FUNCTION {{schema}}.notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{{channel}}', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify AFTER INSERT ON {{schema}}.jobs
  FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.notify_jobs();
