-- N due sends for the dispatch benchmarks (psql -v sends=N): contacts, runs of the
-- one-step workflow "bench" at its send step, and their jobs.
insert into contacts (id, email, first_name, last_name, source)
  select gen_random_uuid(), 'person' || g || '@bench.test', 'Ada', 'Lovelace', 'Bench'
  from generate_series(1, :sends) g;
insert into workflow_runs (id, workflow, entry_key, contact_id, contact, trigger_event)
  select gen_random_uuid(), 'bench', c.id::text, c.id, jsonb_build_object('email', c.email), 'bench.seed'
  from contacts c;
insert into jobs (kind, key, payload, run_at, max_attempts)
  select 'workflow.step', r.id || ':0', jsonb_build_object('run', r.id, 'step', 0), now(), 10
  from workflow_runs r;
analyze;
