-- The bare SQL of one webhook ingest (a user.created for a new user), statement for
-- statement what POST /webhooks/clerk runs, for pgbench -M prepared. The payload is the
-- same user.created JSON the load generator sends, read from bench_payload.
\set n random(1, 9000000000000000000)
BEGIN;
insert into clerk_events (svix_id, event_type, occurred_at, payload) select 'pgbench_' || :client_id::int || '_' || :n::bigint, 'user.created', now(), payload from bench_payload on conflict (svix_id) do nothing;
select pg_advisory_xact_lock(hashtextextended('user:' || 'pgb_' || :client_id::int || '_' || :n::bigint, 0)), pg_advisory_xact_lock(hashtextextended('email:' || lower('pgb' || :client_id::int || '_' || :n::bigint || '@bench.test'), 0));
select deleted_at from clerk_user_deletions where user_id = 'pgb_' || :client_id::int || '_' || :n::bigint;
select * from contacts where user_id = 'pgb_' || :client_id::int || '_' || :n::bigint;
select * from contacts where lower(email) = lower('pgb' || :client_id::int || '_' || :n::bigint || '@bench.test');
insert into contacts (id, email, first_name, last_name, source, user_group, user_id, clerk_updated_at) values (gen_random_uuid(), 'pgb' || :client_id::int || '_' || :n::bigint || '@bench.test', 'Ada', 'Lovelace', 'Clerk', null, 'pgb_' || :client_id::int || '_' || :n::bigint, now());
END;
