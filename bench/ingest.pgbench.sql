-- The bare SQL of one webhook ingest (a user.created for a new user), statement for
-- statement what POST /webhooks/clerk runs, for pgbench -M prepared. The payload is the
-- same user.created JSON the load generator sends, read from bench_payload.
\set n random(1, 9000000000000000000)
BEGIN;
insert into clerk_events (svix_id, event_type, occurred_at, payload) select 'pgbench_' || :client_id || '_' || :n, 'user.created', now(), payload from bench_payload on conflict (svix_id) do nothing;
select pg_advisory_xact_lock(hashtextextended('user:pgb_' || :client_id || '_' || :n, 0));
select deleted_at from clerk_user_deletions where user_id = 'pgb_' || :client_id || '_' || :n;
select pg_advisory_xact_lock(hashtextextended('email:pgb' || :client_id || '_' || :n || '@bench.test', 0));
select * from contacts where user_id = 'pgb_' || :client_id || '_' || :n;
select * from contacts where lower(email) = lower('pgb' || :client_id || '_' || :n || '@bench.test');
insert into contacts (id, email, first_name, last_name, source, user_group, user_id) values (gen_random_uuid(), 'pgb' || :client_id || '_' || :n || '@bench.test', null, null, 'Clerk', null, 'pgb_' || :client_id || '_' || :n) returning id \gset
update contacts set email = coalesce('pgb' || :client_id || '_' || :n || '@bench.test', email), first_name = case when true then 'Ada' else coalesce(first_name, 'Ada') end, last_name = case when true then 'Lovelace' else coalesce(last_name, 'Lovelace') end, user_group = coalesce(null, user_group), user_id = 'pgb_' || :client_id || '_' || :n, clerk_updated_at = now(), graduated_at = case when false then coalesce(graduated_at, now()) else graduated_at end, updated_at = now() where id = :id;
END;
