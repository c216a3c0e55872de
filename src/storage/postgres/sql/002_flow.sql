-- Migration 2: flow control. Concurrency keys on jobs, the per-key flow state (throttles,
-- debounces, concurrency windows, schedule ticks) and paused job names.

ALTER TABLE {{schema}}.jobs
  ADD COLUMN concurrency_key text,
  ADD COLUMN concurrency_limit integer,
  -- Null: a limit on jobs running at once. A number: a limit on starts per this many ms.
  ADD COLUMN concurrency_window bigint,
  ADD COLUMN concurrency_rolling boolean;

-- Claims count the running jobs of a key.
CREATE INDEX jobs_concurrency ON {{schema}}.jobs (concurrency_key, status) WHERE concurrency_key IS NOT NULL;
-- Claims look for due keyed jobs apart from the others.
CREATE INDEX jobs_keyed_pending ON {{schema}}.jobs (priority, run_at, seq)
  WHERE status = 'pending' AND concurrency_key IS NOT NULL;

-- until: for a concurrency window, the time before which the key is full (claims skip it).
CREATE TABLE {{schema}}.flow (
  key text PRIMARY KEY,
  state jsonb NOT NULL,
  until bigint
);

CREATE TABLE {{schema}}.paused (
  name text PRIMARY KEY,
  paused_at bigint NOT NULL
);
