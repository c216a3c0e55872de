-- The statements of the PostgreSQL storage, one per named query. Each is prepared once per
-- connection (a named statement), so a call is one round trip. {{schema}} is the storage's schema.
-- A header gives the query's name and its parameters in order.
--
-- `j.status = (SELECT 'active')` where a batch of ids is joined to the table (heartbeat, complete,
-- settle): the same test as `j.status = 'active'`, but a parameter (an InitPlan) to the planner, so
-- it cannot pick the partial index jobs_lease (status = 'active') for the join. Its statistics are
-- usually stale (taken when few jobs were active) and estimate one active row; the planner then
-- loops over every active job and scans the whole batch for each, quadratic in practice: with 1M
-- finished rows and a worker holding 2,000 jobs, one completion of 1,000 took 0.8 s. With the
-- parameter the only good plan is the batch driving lookups by id (the unique index).

-- name: insertMany
-- params: $1 ids text[], $2 names text[], $3 inputs json (an array of the jobs' inputs), $4 priorities integer[], $5 run_ats bigint[], $6 max_attempts integer[], $7 parent_ids text[], $8 backoffs text[], $9 concurrency_keys text[], $10 concurrency_limits integer[], $11 concurrency_windows bigint[], $12 concurrency_rollings boolean[], $13 now bigint, $14 nows bigint[] (each job's own time, or null: $13 for all)
-- The bulk enqueue of jobs without keys: one statement for any number of jobs, their fields as
-- parallel arrays (array_in parses them far faster than json_to_recordset), their inputs as one
-- JSON array whose elements keep their text as written (json, not jsonb). An id that exists
-- already is left alone (its job is the enqueue's result); the ids inserted come back.
INSERT INTO {{schema}}.jobs (id, name, input, status, priority, run_at, max_attempts, parent_id, backoff,
  concurrency_key, concurrency_limit, concurrency_window, concurrency_rolling, created_at, updated_at)
SELECT t.id, t.name, t.input::text, 'pending', t.priority, t.run_at, t.max_attempts, t.parent_id, t.backoff,
  t.concurrency_key, t.concurrency_limit, t.concurrency_window, t.concurrency_rolling,
  coalesce(t.now, $13), coalesce(t.now, $13)
FROM ROWS FROM (unnest($1::text[]), unnest($2::text[]), json_array_elements($3::json),
  unnest($4::integer[]), unnest($5::bigint[]), unnest($6::integer[]), unnest($7::text[]),
  unnest($8::text[]), unnest($9::text[]), unnest($10::integer[]), unnest($11::bigint[]),
  unnest($12::boolean[]), unnest($14::bigint[])) WITH ORDINALITY
  AS t(id, name, input, priority, run_at, max_attempts, parent_id, backoff, concurrency_key,
    concurrency_limit, concurrency_window, concurrency_rolling, now, n)
ORDER BY t.n
ON CONFLICT DO NOTHING
RETURNING id;

-- name: insertManyFresh
-- params: as insertMany
-- insertMany outside any transaction, betting that every id is new (spool makes ids; a given id
-- rarely exists): a plain INSERT, without ON CONFLICT's speculative insertion into each unique
-- index (a quarter of the server's time for 20,000 jobs). If an id exists after all, the statement
-- fails whole (unique_violation: nothing inserted, and in autocommit nothing else is undone) and
-- the storage runs insertMany instead. Every job is created, so nothing comes back.
INSERT INTO {{schema}}.jobs (id, name, input, status, priority, run_at, max_attempts, parent_id, backoff,
  concurrency_key, concurrency_limit, concurrency_window, concurrency_rolling, created_at, updated_at)
SELECT t.id, t.name, t.input::text, 'pending', t.priority, t.run_at, t.max_attempts, t.parent_id, t.backoff,
  t.concurrency_key, t.concurrency_limit, t.concurrency_window, t.concurrency_rolling,
  coalesce(t.now, $13), coalesce(t.now, $13)
FROM ROWS FROM (unnest($1::text[]), unnest($2::text[]), json_array_elements($3::json),
  unnest($4::integer[]), unnest($5::bigint[]), unnest($6::integer[]), unnest($7::text[]),
  unnest($8::text[]), unnest($9::text[]), unnest($10::integer[]), unnest($11::bigint[]),
  unnest($12::boolean[]), unnest($14::bigint[])) WITH ORDINALITY
  AS t(id, name, input, priority, run_at, max_attempts, parent_id, backoff, concurrency_key,
    concurrency_limit, concurrency_window, concurrency_rolling, now, n)
ORDER BY t.n;

-- name: enqueueKeyed
-- params: $1 jobs json (array of NewJob fields in snake_case, each with its own now or none), $2 now bigint
-- Jobs with idempotency or dedupe keys, one after another in one statement (keys apply within the
-- batch too, so the jobs of several calls written together decide as if written one by one).
SELECT r.status, r.id
FROM ROWS FROM (json_to_recordset($1::json) AS (id text, name text, input text, priority integer,
  run_at bigint, max_attempts integer, dedupe_key text, dedupe_scope text, idempotency_key text,
  parent_id text, backoff text, now bigint)) WITH ORDINALITY
  AS t(id, name, input, priority, run_at, max_attempts, dedupe_key, dedupe_scope, idempotency_key,
    parent_id, backoff, now, n)
CROSS JOIN LATERAL {{schema}}.enqueue_one(t.id, t.name, t.input, t.priority, t.run_at, t.max_attempts,
  t.dedupe_key, t.dedupe_scope, t.idempotency_key, t.parent_id, t.backoff, coalesce(t.now, $2), NULL,
  NULL, NULL) AS r
ORDER BY t.n;

-- name: enqueueClaimed
-- params: $1 id, $2 name, $3 input, $4 priority int, $5 run_at bigint, $6 max_attempts int, $7 dedupe_key, $8 dedupe_scope, $9 idempotency_key, $10 parent_id, $11 backoff, $12 now bigint, $13 owner, $14 token, $15 expires bigint
SELECT status, id FROM {{schema}}.enqueue_one($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15);

-- name: claim
-- params: $1 names text[], $2 owner text, $3 token text, $4 expires bigint, $5 now bigint, $6 limit integer, $7 async boolean
-- Due pending jobs of the names in claim order, skipping those locked by another claimer, those of
-- paused names and those whose dedupe key an active job holds (single-flight), moved to active
-- under the lease. Jobs with a concurrency key are claimed by claimKeyed instead: when the claim
-- took fewer than its limit and such a job is due, a last row with keyed = true (and nothing else)
-- says so, so a claim is one round trip. Waiting jobs of the names whose wake time came (durable
-- sleep) are claimed too, as if pending (keyed ones are left for the reaper to wake, so their
-- limit is kept).
-- $7: commit without waiting for the WAL flush (synchronous_commit off for this transaction only),
-- for a claim that is a statement of its own. A claim lost in a server crash leaves its jobs as
-- they were (pending), to be claimed again: at-least-once holds, and anything the holder writes
-- durably afterwards (a step, a settle) flushes the WAL up to and including the claim first, so
-- fencing holds too. Inside settleAndClaim's transaction it is false (the settle stays durable).
WITH p AS (
  SELECT seq, priority, run_at FROM {{schema}}.jobs j
  WHERE status = 'pending' AND run_at <= $5 AND name = ANY($1::text[]) AND concurrency_key IS NULL
    AND NOT EXISTS (SELECT 1 FROM {{schema}}.paused p WHERE p.name = j.name)
    AND (dedupe_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM {{schema}}.jobs a
      WHERE a.name = j.name AND a.dedupe_key = j.dedupe_key AND a.status = 'active'))
  ORDER BY priority, run_at, seq
  LIMIT $6
  FOR UPDATE SKIP LOCKED
), w AS (
  SELECT seq, priority, run_at FROM {{schema}}.jobs j
  WHERE status = 'waiting' AND run_at <= $5 AND name = ANY($1::text[]) AND concurrency_key IS NULL
    AND NOT EXISTS (SELECT 1 FROM {{schema}}.paused p WHERE p.name = j.name)
  ORDER BY run_at
  LIMIT $6
  FOR UPDATE SKIP LOCKED
), c AS (
  SELECT seq FROM (SELECT * FROM p UNION ALL SELECT * FROM w) AS due
  ORDER BY priority, run_at, seq
  LIMIT $6
), cfg AS (
  SELECT CASE WHEN $7::boolean THEN set_config('synchronous_commit', 'off', true) END AS v
), u AS (
  UPDATE {{schema}}.jobs AS j SET status = 'active', attempt = j.attempt + 1, lease_owner = $2,
    lease_token = $3, lease_expires_at = $4, started_at = $5, updated_at = $5
  FROM c, cfg WHERE j.seq = c.seq
  RETURNING j.id, j.name, j.input, j.attempt, j.max_attempts, j.priority, j.parent_id, j.backoff,
    j.created_at, j.run_at, j.seq
)
SELECT u.*, false AS keyed FROM u
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true
WHERE (SELECT count(*) FROM u) < $6 AND EXISTS (
  SELECT 1 FROM {{schema}}.jobs
  WHERE status = 'pending' AND concurrency_key IS NOT NULL AND run_at <= $5 AND name = ANY($1::text[]));

-- name: keyedCandidates
-- params: $1 names text[], $2 now bigint, $3 limit integer
-- Inside the claim's transaction: due keyed jobs whose key is not at its limit as last committed,
-- locked. The storage then locks each key (an advisory lock), recounts, and takes what fits.
SELECT seq, concurrency_key, concurrency_limit, concurrency_window, concurrency_rolling
FROM {{schema}}.jobs j
WHERE status = 'pending' AND concurrency_key IS NOT NULL AND run_at <= $2 AND name = ANY($1::text[])
  AND NOT EXISTS (SELECT 1 FROM {{schema}}.paused p WHERE p.name = j.name)
  AND (dedupe_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM {{schema}}.jobs a
    WHERE a.name = j.name AND a.dedupe_key = j.dedupe_key AND a.status = 'active'))
  AND ((concurrency_window IS NULL AND (
      SELECT count(*) FROM {{schema}}.jobs c
      WHERE c.concurrency_key = j.concurrency_key AND c.status = 'active') < concurrency_limit)
    OR (concurrency_window IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM {{schema}}.flow f WHERE f.key = 'c:' || j.concurrency_key AND f.until > $2)))
ORDER BY priority, run_at, seq
LIMIT $3
FOR UPDATE OF j SKIP LOCKED;

-- name: lockKeys
-- params: $1 keys text[] (flow keys)
-- Serializes decisions about these keys across processes until the transaction ends; in sorted
-- order, so two transactions locking overlapping keys cannot deadlock.
SELECT count(pg_advisory_xact_lock(hashtextextended('spool:f:' || k, 0)))::integer AS n
FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) s;

-- name: activeByKey
-- params: $1 concurrency keys text[]
SELECT concurrency_key AS key, count(*)::integer AS n FROM {{schema}}.jobs
WHERE concurrency_key = ANY($1::text[]) AND status = 'active'
GROUP BY concurrency_key;

-- name: claimSeqs
-- params: $1 seqs bigint[], $2 owner, $3 token, $4 expires bigint, $5 now bigint
UPDATE {{schema}}.jobs AS j SET status = 'active', attempt = j.attempt + 1, lease_owner = $2,
  lease_token = $3, lease_expires_at = $4, started_at = $5, updated_at = $5
WHERE j.seq = ANY($1::bigint[]) AND j.status = 'pending'
RETURNING j.id, j.name, j.input, j.attempt, j.max_attempts, j.priority, j.parent_id, j.backoff,
  j.created_at, j.run_at, j.seq;

-- name: getFlows
-- params: $1 keys text[]
SELECT key, state FROM {{schema}}.flow WHERE key = ANY($1::text[]);

-- name: setFlow
-- params: $1 key, $2 state jsonb, $3 until bigint
INSERT INTO {{schema}}.flow (key, state, until) VALUES ($1, $2::jsonb, $3)
ON CONFLICT (key) DO UPDATE SET state = excluded.state, until = excluded.until;

-- name: replacePending
-- params: $1 id, $2 input, $3 run_at bigint, $4 now bigint
-- A debounce: the pending job takes the new input and runAt.
UPDATE {{schema}}.jobs SET input = $2, run_at = $3, updated_at = $4
WHERE id = $1 AND status = 'pending'
RETURNING id;

-- name: jobStatus
-- params: $1 id
SELECT status FROM {{schema}}.jobs WHERE id = $1;

-- name: setConcurrency
-- params: $1 id, $2 key, $3 limit integer, $4 window bigint, $5 rolling boolean
UPDATE {{schema}}.jobs SET concurrency_key = $2, concurrency_limit = $3, concurrency_window = $4,
  concurrency_rolling = $5
WHERE id = $1;

-- name: setRunAt
-- params: $1 id, $2 run_at bigint
UPDATE {{schema}}.jobs SET run_at = $2 WHERE id = $1;

-- name: pause
-- params: $1 name, $2 now bigint
INSERT INTO {{schema}}.paused (name, paused_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING;

-- name: resume
-- params: $1 name
DELETE FROM {{schema}}.paused WHERE name = $1;

-- name: listPaused
-- params: (none)
SELECT name FROM {{schema}}.paused ORDER BY name;

-- name: claimById
-- params: $1 id, $2 owner, $3 token, $4 expires bigint, $5 now bigint
UPDATE {{schema}}.jobs AS j SET status = 'active', attempt = j.attempt + 1, lease_owner = $2,
  lease_token = $3, lease_expires_at = $4, started_at = $5, updated_at = $5
WHERE j.id = $1 AND j.status = 'pending'
RETURNING j.id, j.name, j.input, j.attempt, j.max_attempts, j.priority, j.parent_id, j.backoff,
  j.created_at, j.run_at, j.seq;

-- name: dedupeHolders
-- params: $1 name, $2 dedupe_key
SELECT id, status FROM {{schema}}.jobs
WHERE name = $1 AND dedupe_key = $2 AND status IN ('pending', 'active') ORDER BY seq;

-- name: heartbeat
-- params: $1 ids text[], $2 tokens text[], $3 expires bigint, $4 now bigint
-- Extends the leases still held under their tokens; never shortens one (heartbeats may arrive out
-- of order over several connections). Returns the ids still held.
UPDATE {{schema}}.jobs AS j SET lease_expires_at = GREATEST(j.lease_expires_at, $3), updated_at = $4
FROM unnest($1::text[], $2::text[]) AS l(id, token)
WHERE j.id = l.id AND j.status = (SELECT 'active') AND j.lease_token = l.token
RETURNING j.id;

-- name: complete
-- params: $1 ids text[], $2 tokens text[], $3 outputs text[] (JSON texts), $4 now bigint, $5 evented boolean[], $6 remove boolean[]
-- The common outcome on its own: completions, each applied only while its token holds the job
-- (fencing), waking the waiting parents of those applied; $6: delete the row instead of keeping
-- it (retention 0). Each DML reads the arrays itself (unnest inlined, never a shared materialized
-- CTE that a nested loop would scan once per job). $5: whether the
-- completion publishes its job's completion event (topic 'job:' || name, subject the input,
-- payload {input, output}), built here from the row and only for waiters that want it. The same
-- changes as settle's for these outcomes, from plain arrays (no JSON document of every outcome to
-- build and parse, no CTEs for kinds that are absent). Returns the ids applied.
WITH kept AS (
  UPDATE {{schema}}.jobs AS j SET status = 'completed', output = o.output, finished_at = $4,
    updated_at = $4, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
  FROM unnest($1::text[], $2::text[], $3::text[], $5::boolean[], $6::boolean[])
    AS o(id, token, output, evented, remove)
  WHERE NOT o.remove AND j.id = o.id AND j.status = (SELECT 'active') AND j.lease_token = o.token
  RETURNING j.id, j.parent_id, j.name, j.input, o.output, o.evented
), removed AS (
  DELETE FROM {{schema}}.jobs AS j
  USING unnest($1::text[], $2::text[], $3::text[], $5::boolean[], $6::boolean[])
    AS o(id, token, output, evented, remove)
  WHERE o.remove AND j.id = o.id AND j.status = (SELECT 'active') AND j.lease_token = o.token
  RETURNING j.id, j.parent_id, j.name, j.input, o.output, o.evented
), changed AS (
  SELECT * FROM kept UNION ALL SELECT * FROM removed
), woken AS (
  UPDATE {{schema}}.jobs AS p SET status = 'pending', run_at = $4, updated_at = $4
  FROM (SELECT DISTINCT parent_id FROM changed WHERE parent_id IS NOT NULL) AS c
  WHERE p.id = c.parent_id AND p.status = 'waiting'
  RETURNING p.id
), received AS (
  SELECT w.id, w.job_id,
    jsonb_agg(jsonb_build_object('input', c.input::jsonb, 'output', c.output::jsonb)) AS payloads
  FROM changed c
  JOIN {{schema}}.waiters w ON w.topic = 'job:' || c.name AND (w.match IS NULL OR c.input::jsonb @> w.match)
  JOIN {{schema}}.jobs wj ON wj.id = w.job_id AND wj.status IN ('pending', 'active', 'waiting')
  WHERE c.evented
  GROUP BY w.id, w.job_id
), published AS (
  UPDATE {{schema}}.waiters AS w SET events = w.events || r.payloads
  FROM received r WHERE w.id = r.id
  RETURNING w.job_id
), signalled AS (
  UPDATE {{schema}}.jobs AS p SET status = 'pending', run_at = $4, updated_at = $4
  WHERE p.id IN (SELECT job_id FROM received) AND p.status = 'waiting'
    AND p.id NOT IN (SELECT id FROM woken)
  RETURNING p.id
)
SELECT id FROM changed;

-- name: settle
-- params: $1 outcomes json (array of {id, token, kind, output, error, run_at, remove, children, waiters, event_topic, event_subject, event_payload}), $2 now bigint
-- Applies outcomes, each only while its token holds the job (fencing), and wakes the waiting
-- parents of jobs that reached a terminal state. A suspension whose awaited child is already
-- terminal (or gone), or whose waiter already holds an event, goes to pending instead. A
-- completion's event is appended to the matching waiters of live jobs, which are woken.
-- Returns the ids applied.
WITH o AS (
  SELECT * FROM json_to_recordset($1::json) AS o(id text, token text, kind text, output text, error jsonb,
    run_at bigint, remove boolean, children jsonb, waiters jsonb, event_topic text, event_subject jsonb,
    event_payload jsonb)
), removed AS (
  DELETE FROM {{schema}}.jobs AS j USING o
  WHERE o.kind = 'completed' AND o.remove AND j.id = o.id AND j.status = (SELECT 'active') AND j.lease_token = o.token
  RETURNING j.id, j.parent_id
), changed AS (
  UPDATE {{schema}}.jobs AS j SET
    status = CASE o.kind WHEN 'completed' THEN 'completed' WHEN 'dead' THEN 'dead'
      WHEN 'suspended' THEN CASE WHEN a.arrived THEN 'pending' ELSE 'waiting' END ELSE 'pending' END,
    attempt = CASE WHEN o.kind IN ('suspended', 'released') THEN j.attempt - 1 ELSE j.attempt END,
    output = CASE WHEN o.kind = 'completed' THEN o.output ELSE j.output END,
    errors = CASE WHEN o.kind IN ('retry', 'dead') THEN j.errors || jsonb_build_array(o.error) ELSE j.errors END,
    run_at = CASE o.kind WHEN 'retry' THEN o.run_at
      WHEN 'suspended' THEN CASE WHEN a.arrived THEN $2 ELSE o.run_at END WHEN 'released' THEN $2
      ELSE j.run_at END,
    finished_at = CASE WHEN o.kind IN ('completed', 'dead') THEN $2 ELSE j.finished_at END,
    updated_at = $2, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
  FROM o CROSS JOIN LATERAL (
    SELECT o.kind = 'suspended' AND (
      EXISTS (SELECT 1 FROM jsonb_array_elements_text(coalesce(o.children, '[]')) AS c(id)
        WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.jobs x WHERE x.id = c.id
          AND x.status IN ('pending', 'active', 'waiting')))
      OR EXISTS (SELECT 1 FROM {{schema}}.waiters w
        WHERE w.id IN (SELECT jsonb_array_elements_text(coalesce(o.waiters, '[]'))) AND w.events <> '[]'::jsonb)
    ) AS arrived
  ) AS a
  WHERE NOT (o.kind = 'completed' AND o.remove) AND j.id = o.id AND j.status = (SELECT 'active')
    AND j.lease_token = o.token
  RETURNING j.id, j.parent_id, o.kind
), parents AS (
  SELECT parent_id FROM removed WHERE parent_id IS NOT NULL
  UNION
  SELECT parent_id FROM changed WHERE parent_id IS NOT NULL AND kind IN ('completed', 'dead')
), woken AS (
  UPDATE {{schema}}.jobs AS p SET status = 'pending', run_at = $2, updated_at = $2
  FROM parents WHERE p.id = parents.parent_id AND p.status = 'waiting'
  RETURNING p.id
), ev AS (
  SELECT o.event_topic AS topic, o.event_subject AS subject, o.event_payload AS payload
  FROM o WHERE o.kind = 'completed' AND o.event_topic IS NOT NULL
    AND o.id IN (SELECT id FROM removed UNION ALL SELECT id FROM changed)
), received AS (
  SELECT w.id, w.job_id, jsonb_agg(ev.payload) AS payloads
  FROM {{schema}}.waiters w JOIN ev ON w.topic = ev.topic AND (w.match IS NULL OR ev.subject @> w.match)
  JOIN {{schema}}.jobs wj ON wj.id = w.job_id AND wj.status IN ('pending', 'active', 'waiting')
  GROUP BY w.id, w.job_id
), published AS (
  UPDATE {{schema}}.waiters AS w SET events = w.events || r.payloads
  FROM received r WHERE w.id = r.id
  RETURNING w.job_id
), signalled AS (
  UPDATE {{schema}}.jobs AS p SET status = 'pending', run_at = $2, updated_at = $2
  WHERE p.id IN (SELECT job_id FROM received) AND p.status = 'waiting'
    AND p.id NOT IN (SELECT id FROM woken)
  RETURNING p.id
)
SELECT id FROM removed UNION ALL SELECT id FROM changed;

-- name: appendLogs
-- params: $1 logs json (array of {id, lines}), $2 max_lines integer
-- Appends ctx.log lines, keeping the last max_lines.
UPDATE {{schema}}.jobs AS j SET logs = (
  SELECT coalesce(jsonb_agg(t.e ORDER BY t.n), '[]'::jsonb)
  FROM jsonb_array_elements(j.logs || l.lines) WITH ORDINALITY AS t(e, n)
  WHERE t.n > jsonb_array_length(j.logs || l.lines) - $2)
FROM json_to_recordset($1::json) AS l(id text, lines jsonb)
WHERE j.id = l.id;

-- name: reap
-- params: $1 now bigint, $2 limit integer
-- Maintenance, safe in every process at once (SKIP LOCKED, conditions rechecked on lock): expired
-- leases back to pending with the attempt counted, or dead when none is left (waking a waiting
-- parent); waiting jobs whose time came to pending.
WITH expired AS (
  SELECT seq FROM {{schema}}.jobs
  WHERE status = 'active' AND lease_expires_at <= $1::bigint
  ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
), reaped AS (
  UPDATE {{schema}}.jobs AS j SET
    status = CASE WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'pending' END,
    run_at = CASE WHEN j.attempt >= j.max_attempts THEN j.run_at ELSE $1::bigint END,
    finished_at = CASE WHEN j.attempt >= j.max_attempts THEN $1::bigint ELSE NULL END,
    errors = j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'name', 'LeaseLostError',
      'message', 'The worker ''' || j.lease_owner
        || ''' stopped heartbeating (crashed or stalled) and its lease expired.',
      'code', 'SPOOL_LEASE_LOST', 'at', $1::bigint)),
    updated_at = $1::bigint, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
  FROM expired e WHERE j.seq = e.seq
  RETURNING j.id, j.status, j.parent_id, e.seq
), parents AS (
  UPDATE {{schema}}.jobs AS p SET status = 'pending', run_at = $1::bigint, updated_at = $1::bigint
  FROM (SELECT DISTINCT parent_id FROM reaped WHERE status = 'dead' AND parent_id IS NOT NULL) r
  WHERE p.id = r.parent_id AND p.status = 'waiting'
  RETURNING p.id
), woken AS (
  UPDATE {{schema}}.jobs AS w SET status = 'pending', run_at = $1::bigint, updated_at = $1::bigint
  WHERE w.seq IN (
    SELECT seq FROM {{schema}}.jobs WHERE status = 'waiting' AND run_at <= $1::bigint
    ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED)
  RETURNING w.id, w.seq
)
SELECT id, CASE status WHEN 'dead' THEN 'dead' ELSE 'requeued' END AS what, seq FROM reaped
UNION ALL
SELECT id, 'woken', seq FROM woken
ORDER BY seq;

-- name: wake
-- params: $1 ids text[], $2 now bigint
UPDATE {{schema}}.jobs SET status = 'pending', run_at = $2, updated_at = $2
WHERE id = ANY($1::text[]) AND status = 'waiting'
RETURNING id;

-- name: cancel
-- params: $1 id, $2 now bigint
-- Cancels a job that is not terminal (an active one loses its lease: fencing), waking a waiting
-- parent. Returns the status it had, or nothing when there is no such job.
WITH prev AS (
  SELECT id, status FROM {{schema}}.jobs WHERE id = $1 FOR UPDATE
), cancelled AS (
  UPDATE {{schema}}.jobs AS j SET status = 'cancelled', finished_at = $2, updated_at = $2,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
  FROM prev WHERE j.id = prev.id AND prev.status IN ('pending', 'active', 'waiting')
  RETURNING j.parent_id
), parents AS (
  UPDATE {{schema}}.jobs AS p SET status = 'pending', run_at = $2, updated_at = $2
  FROM cancelled c WHERE p.id = c.parent_id AND p.status = 'waiting'
  RETURNING p.id
)
SELECT status FROM prev;

-- name: replayIds
-- params: $1 ids text[], $2 now bigint
UPDATE {{schema}}.jobs SET status = 'pending', attempt = 0, run_at = $2, finished_at = NULL, updated_at = $2
WHERE status = 'dead' AND id = ANY($1::text[])
RETURNING id, seq;

-- name: replayName
-- params: $1 name, $2 now bigint
UPDATE {{schema}}.jobs SET status = 'pending', attempt = 0, run_at = $2, finished_at = NULL, updated_at = $2
WHERE status = 'dead' AND name = $1
RETURNING id, seq;

-- name: prune
-- params: $1 statuses text[], $2 before bigint, $3 limit integer, $4 name (null for every name)
-- At most $3 finished jobs, oldest first, through the partial index of finished rows.
DELETE FROM {{schema}}.jobs WHERE seq IN (
  SELECT seq FROM {{schema}}.jobs
  WHERE finished_at IS NOT NULL AND status = ANY($1::text[]) AND finished_at < $2
    AND ($4::text IS NULL OR name = $4::text)
  ORDER BY status, finished_at
  LIMIT $3
  FOR UPDATE SKIP LOCKED);

-- name: getJob
-- params: $1 id
SELECT * FROM {{schema}}.jobs WHERE id = $1;

-- name: listJobs
-- params: $1 below bigint (the cursor), $2 name, $3 status, $4 parent_id, $5 limit integer
SELECT * FROM {{schema}}.jobs
WHERE seq < $1 AND ($2::text IS NULL OR name = $2::text) AND ($3::text IS NULL OR status = $3::text)
  AND ($4::text IS NULL OR parent_id = $4::text)
ORDER BY seq DESC LIMIT $5;

-- name: stats
-- params: $1 name (null for every name)
SELECT name, status, count(*)::integer AS n FROM {{schema}}.jobs
WHERE $1::text IS NULL OR name = $1::text
GROUP BY name, status;

-- name: getSteps
-- params: $1 job_id
SELECT * FROM {{schema}}.steps WHERE job_id = $1 ORDER BY seq;

-- name: saveStep
-- params: $1 job_id, $2 token, $3 step_id, $4 name, $5 state, $6 output, $7 error jsonb, $8 now bigint, $9 idx integer
-- Records a step only while the token holds the job; a completed step is final. Returns held = 1
-- when the lease holds.
WITH held AS (
  SELECT id FROM {{schema}}.jobs WHERE id = $1 AND status = 'active' AND lease_token = $2 FOR SHARE
), saved AS (
  INSERT INTO {{schema}}.steps AS s (job_id, step_id, seq, name, state, output, error, created_at, updated_at, idx)
  SELECT held.id, $3, (SELECT coalesce(max(x.seq), 0) + 1 FROM {{schema}}.steps x WHERE x.job_id = $1),
    $4, $5, $6, $7::jsonb, $8, $8, $9::integer
  FROM held
  ON CONFLICT (job_id, step_id) DO UPDATE SET state = excluded.state, output = excluded.output,
    error = excluded.error, updated_at = excluded.updated_at
  WHERE s.state <> 'completed'
)
SELECT count(*)::integer AS held FROM held;

-- name: addWaiter
-- params: $1 id, $2 job_id, $3 token, $4 topic, $5 match jsonb, $6 now bigint
-- Registers a waiter only while the token holds its job; an existing one is kept. Returns held = 1
-- when the lease holds.
WITH held AS (
  SELECT id FROM {{schema}}.jobs WHERE id = $2 AND status = 'active' AND lease_token = $3 FOR SHARE
), added AS (
  INSERT INTO {{schema}}.waiters (id, job_id, topic, match, events, created_at)
  SELECT $1, held.id, $4, $5::jsonb, '[]'::jsonb, $6 FROM held
  ON CONFLICT (id) DO NOTHING
)
SELECT count(*)::integer AS held FROM held;

-- name: getWaiter
-- params: $1 id
SELECT id, job_id, topic, match::text AS match, events::text AS events, created_at
FROM {{schema}}.waiters WHERE id = $1;

-- name: trimWaiter
-- params: $1 id, $2 drop integer: drops the oldest $2 events.
UPDATE {{schema}}.waiters AS w SET events = coalesce((
  SELECT jsonb_agg(t.e ORDER BY t.n) FROM jsonb_array_elements(w.events) WITH ORDINALITY AS t(e, n)
  WHERE t.n > $2), '[]'::jsonb)
WHERE w.id = $1;

-- name: deleteWaiter
-- params: $1 id
DELETE FROM {{schema}}.waiters WHERE id = $1;

-- name: publish
-- params: $1 topic, $2 subject jsonb, $3 payload jsonb, $4 now bigint
-- Appends an event to the matching waiters of live jobs and wakes those waiting. Returns the woken.
WITH received AS (
  UPDATE {{schema}}.waiters AS w SET events = w.events || jsonb_build_array($3::jsonb)
  FROM {{schema}}.jobs wj
  WHERE w.topic = $1 AND (w.match IS NULL OR $2::jsonb @> w.match)
    AND wj.id = w.job_id AND wj.status IN ('pending', 'active', 'waiting')
  RETURNING w.job_id
)
UPDATE {{schema}}.jobs AS p SET status = 'pending', run_at = $4, updated_at = $4
WHERE p.id IN (SELECT job_id FROM received) AND p.status = 'waiting'
RETURNING p.id;
