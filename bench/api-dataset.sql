-- The dataset of bench/api-queries.sh: 200,000 contacts and 1,000,000 raw Clerk events
-- over the year before 2026-11-01, shaped like a live app's log. Run with psql, with
-- the variable user_fixture set to the user.created fixture, and extra_sessions (0 for
-- the 1,000,000 events; 9000000 for 10,000,000) more session.created spread over the
-- same year, as a busier app's log grows.
--   contacts: 150,000 Clerk users (20,000 graduated from the waitlist), 40,000 on the
--             waitlist, 10,000 from the API; every tenth unsubscribed
--   events:   150,000 user.created, 10,000 user.deleted, 200,000 user.updated (0.5%
--             banned, 0.2% locked), 520,000 session.created, 20,000 session.revoked,
--             60,000 waitlistEntry.created, 30,000 waitlistEntry.updated,
--             8,000 organization.created, 2,000 organization.deleted
\set ON_ERROR_STOP 1
set synchronous_commit = off;

create temporary table names as
select array['Ada','Grace','Alan','Edsger','Barbara','Donald','Margaret','Ken','Radia','John',
             'Frances','Niklaus','Leslie','Shafi','Tim','Katherine','Dennis','Sophie','Linus','Hedy'] as first,
       array['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Hamilton','Thompson','Perlman',
             'Backus','Allen','Wirth','Lamport','Goldwasser','Berners-Lee','Johnson','Ritchie','Wilson',
             'Torvalds','Lamarr','Kay','Cerf','Kahn'] as last;

-- Version 7 UUIDs (time first), as Roster makes them.
create temporary table people as
select n,
       timestamptz '2025-11-01' + (n::float8 / 200000) * interval '365 days' as created_at,
       (select first[1 + n % 20] from names) as first_name,
       (select last[1 + n % 23] from names) as last_name
from generate_series(1, 200000) as n;

insert into contacts (id, email, first_name, last_name, source, subscribed, user_group, user_id,
                      waitlist_entry_id, waitlist_status, waitlist_joined_at, graduated_at,
                      unsubscribed_at, created_at, updated_at)
select encode(overlay(uuid_send(gen_random_uuid())
                      placing substring(int8send((extract(epoch from created_at) * 1000)::bigint) from 3)
                      from 1 for 6), 'hex')::uuid,
       lower(first_name || '.' || last_name || n || '@example.com'),
       first_name, last_name,
       case when n > 190000 then 'API' else 'Clerk' end,
       n % 10 <> 0,
       case when n <= 150000 then 'Users' when n <= 190000 then 'Waitlist' end,
       case when n <= 150000 then 'user_' || n end,
       case when n <= 20000 or n between 150001 and 190000 then 'wle_' || n end,
       case when n <= 20000 then 'completed'
            when n between 150001 and 190000 then (array['pending','pending','invited','rejected'])[1 + n % 4] end,
       case when n <= 20000 then created_at - (1 + n % 30) * interval '1 day'
            when n between 150001 and 190000 then created_at end,
       case when n <= 20000 then created_at end,
       case when n % 10 = 0 then created_at + interval '20 days' end,
       created_at, created_at
from people;

-- Events. `at(i, count)` spreads event i of count over the year, with some jitter.
create function pg_temp.at(i bigint, count bigint) returns timestamptz language sql immutable as
$$ select timestamptz '2025-11-01' + ((i::float8 + (hashint8(i) % 1000) / 1000.0) / count) * interval '365 days' $$;

insert into clerk_events (svix_id, event_type, occurred_at, payload)
select 'msg_uc_' || n, 'user.created', pg_temp.at(n, 150000),
       jsonb_set(jsonb_set(:'user_fixture'::jsonb, '{data,id}', to_jsonb('user_' || n)),
                 '{data,email_addresses,0,email_address}', to_jsonb('person' || n || '@example.com'))
from generate_series(1, 150000) as n;

insert into clerk_events (svix_id, event_type, occurred_at, payload)
select 'msg_ud_' || n, 'user.deleted', pg_temp.at(n * 15, 150000) + interval '30 days',
       jsonb_build_object('object', 'event', 'type', 'user.deleted',
                          'data', jsonb_build_object('id', 'user_' || (n * 15), 'object', 'user', 'deleted', true))
from generate_series(1, 10000) as n;

insert into clerk_events (svix_id, event_type, occurred_at, payload)
select 'msg_uu_' || n, 'user.updated', pg_temp.at(n, 200000),
       jsonb_set(jsonb_set(jsonb_set(jsonb_set(:'user_fixture'::jsonb, '{type}', '"user.updated"'),
                 '{data,id}', to_jsonb('user_' || (1 + n % 150000))),
                 '{data,banned}', to_jsonb(n % 200 = 0)),
                 '{data,locked}', to_jsonb(n % 500 = 7))
from generate_series(1, 200000) as n;

insert into clerk_events (svix_id, event_type, occurred_at, payload)
select 'msg_sc_' || n, 'session.created', pg_temp.at(n, 520000),
       jsonb_build_object('object', 'event', 'type', 'session.created',
                          'data', jsonb_build_object('id', 'sess_' || n, 'object', 'session', 'status', 'active',
                                                     'user_id', 'user_' || (1 + hashint8(n) % 150000 + 150000) % 150000 + 1))
from generate_series(1, 520000) as n;

insert into clerk_events (svix_id, event_type, occurred_at, payload)
select 'msg_sx_' || n, 'session.created', pg_temp.at(n, :extra_sessions),
       jsonb_build_object('object', 'event', 'type', 'session.created',
                          'data', jsonb_build_object('id', 'sess_x' || n, 'object', 'session', 'status', 'active',
                                                     'user_id', 'user_' || (1 + hashint8(n + 7) % 150000 + 150000) % 150000 + 1))
from generate_series(1, :extra_sessions) as n;

insert into clerk_events (svix_id, event_type, occurred_at, payload)
select 'msg_sr_' || n, 'session.revoked', pg_temp.at(n, 20000),
       jsonb_build_object('object', 'event', 'type', 'session.revoked',
                          'data', jsonb_build_object('id', 'sess_' || (n * 26), 'object', 'session', 'status', 'revoked',
                                                     'user_id', 'user_' || (1 + n % 150000)))
from generate_series(1, 20000) as n;

insert into clerk_events (svix_id, event_type, occurred_at, payload)
select 'msg_wc_' || n, 'waitlistEntry.created', pg_temp.at(n, 60000),
       jsonb_build_object('object', 'event', 'type', 'waitlistEntry.created',
                          'data', jsonb_build_object('id', 'wle_' || n, 'object', 'waitlist_entry', 'status', 'pending',
                                                     'email_address', 'wait' || n || '@example.com'))
from generate_series(1, 60000) as n;

insert into clerk_events (svix_id, event_type, occurred_at, payload)
select 'msg_wu_' || n, 'waitlistEntry.updated', pg_temp.at(n * 2, 60000) + interval '5 days',
       jsonb_build_object('object', 'event', 'type', 'waitlistEntry.updated',
                          'data', jsonb_build_object('id', 'wle_' || (n * 2), 'object', 'waitlist_entry',
                                                     'status', case when n % 3 = 0 then 'rejected' else 'invited' end,
                                                     'email_address', 'wait' || (n * 2) || '@example.com'))
from generate_series(1, 30000) as n;

insert into clerk_events (svix_id, event_type, occurred_at, payload)
select 'msg_oc_' || n, 'organization.created', pg_temp.at(n, 8000),
       jsonb_build_object('object', 'event', 'type', 'organization.created',
                          'data', jsonb_build_object('id', 'org_' || n, 'object', 'organization', 'name', 'Org ' || n,
                                                     'created_by', 'user_' || n))
from generate_series(1, 8000) as n;

insert into clerk_events (svix_id, event_type, occurred_at, payload)
select 'msg_od_' || n, 'organization.deleted', pg_temp.at(n * 4, 8000) + interval '10 days',
       jsonb_build_object('object', 'event', 'type', 'organization.deleted',
                          'data', jsonb_build_object('id', 'org_' || (n * 4), 'object', 'organization', 'deleted', true))
from generate_series(1, 2000) as n;

-- What Roster notes and counts for every stored event (src/events/mod.rs), for the whole log.
insert into clerk_event_firsts (kind, subject_id, first_at)
select kind, subject_id, min(occurred_at)
from (select lifecycle_step(event_type, payload #>> '{data,status}') as kind, subject_id, occurred_at
      from clerk_events
      where subject_id is not null) as firsts
where kind is not null
group by kind, subject_id;
insert into clerk_event_counts (day, event_type, shard, events)
select (occurred_at at time zone 'UTC')::date, event_type, 0, count(*)
from clerk_events group by 1, 2;
vacuum analyze clerk_event_firsts;
vacuum analyze clerk_event_counts;
vacuum analyze contacts;
vacuum analyze clerk_events;
