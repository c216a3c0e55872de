-- Migration 3: durable execution. Step call indexes (to catch a replay that meets a different
-- step), and waiters: jobs suspended in job.waitFor / pipe.waitFor, with the events they received.

ALTER TABLE {{schema}}.steps ADD COLUMN idx integer;

CREATE TABLE {{schema}}.waiters (
  id text PRIMARY KEY,
  job_id text NOT NULL REFERENCES {{schema}}.jobs (id) ON DELETE CASCADE,
  topic text NOT NULL,
  -- A pattern the event's subject must contain (jsonb @>); null takes every event of the topic.
  match jsonb,
  events jsonb NOT NULL DEFAULT '[]',
  created_at bigint NOT NULL
);
CREATE INDEX waiters_topic ON {{schema}}.waiters (topic);
CREATE INDEX waiters_job ON {{schema}}.waiters (job_id);
