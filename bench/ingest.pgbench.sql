-- The bare SQL of one webhook ingest (a user.created for a new user), statement for
-- statement what POST /webhooks/clerk runs, for pgbench -M prepared. The payload is the
-- same user.created JSON the load generator sends, read from bench_payload.
\set n random(1, 9000000000000000000)
BEGIN;
with stored as (insert into clerk_events (svix_id, event_type, occurred_at, payload) select 'pgbench_' || :client_id::int || '_' || :n::bigint, 'user.created', now(), jsonb_set(payload, '{data,id}', to_jsonb('pgb_' || :client_id::int || '_' || :n::bigint)) from bench_payload on conflict (svix_id) do nothing returning event_type, subject_id, occurred_at, payload #>> '{data,status}' as status), firsts as (insert into clerk_event_firsts (kind, subject_id, first_at) select lifecycle_step(event_type, status), subject_id, occurred_at from stored where subject_id is not null and lifecycle_step(event_type, status) is not null on conflict (kind, subject_id) do update set first_at = excluded.first_at where excluded.first_at < clerk_event_firsts.first_at), counted as (insert into clerk_event_counts (day, event_type, shard, events) select (occurred_at at time zone 'UTC')::date, event_type, pg_backend_pid() % 16, 1 from stored on conflict (day, event_type, shard) do update set events = clerk_event_counts.events + 1) select count(*) from stored;
select pg_advisory_xact_lock(hashtextextended('user:' || 'pgb_' || :client_id::int || '_' || :n::bigint, 0)), pg_advisory_xact_lock(hashtextextended('email:' || lower('pgb' || :client_id::int || '_' || :n::bigint || '@bench.test'), 0));
select deleted_at from clerk_user_deletions where user_id = 'pgb_' || :client_id::int || '_' || :n::bigint;
select * from contacts where user_id = 'pgb_' || :client_id::int || '_' || :n::bigint;
select * from contacts where lower(email) = lower('pgb' || :client_id::int || '_' || :n::bigint || '@bench.test');
insert into contacts (id, email, first_name, last_name, source, user_group, user_id, clerk_updated_at) values (gen_random_uuid(), 'pgb' || :client_id::int || '_' || :n::bigint || '@bench.test', 'Ada', 'Lovelace', 'Clerk', null, 'pgb_' || :client_id::int || '_' || :n::bigint, now());
END;
