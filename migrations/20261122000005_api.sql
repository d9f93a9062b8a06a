-- Loops-compatible API and Roster's own API: custom contact properties, events sent
-- through the API, idempotency keys, and indexes for search, timelines and analytics.

-- Custom contact properties (Loops' "contact properties"): a name and a type, created
-- through the API; values live in contacts.properties.
create table contact_properties (
    name       text        primary key,
    type       text        not null check (type in ('string', 'number', 'boolean', 'date')),
    created_at timestamptz not null default now()
);

-- Events sent through `POST /api/v1/events/send`.
create table api_events (
    id          bigint      generated always as identity primary key,
    event_name  text        not null,
    contact_id  uuid        references contacts (id) on delete set null,
    properties  jsonb       not null default '{}',
    created_at  timestamptz not null default now()
);

create index api_events_contact on api_events (contact_id, id);

-- `Idempotency-Key`s of events and transactional sends, per route, kept 24 hours. A row
-- without a status is a request still in flight; `token` names that request, so only it
-- can store its answer or release the key.
create table idempotency_keys (
    route        text        not null,
    key          text        not null,
    token        uuid        not null,
    request_hash bytea       not null,
    status       smallint,
    response     jsonb,
    created_at   timestamptz not null default now(),
    primary key (route, key)
);

create index idempotency_keys_created_at on idempotency_keys (created_at);

-- Who an event is about: the Clerk user for user and session events, else the object
-- itself (a waitlist entry, an organization). Timelines and distinct counts read it.
alter table clerk_events add column subject_id text
    generated always as (coalesce(payload #>> '{data,user_id}', payload #>> '{data,id}')) stored;

create index clerk_events_subject on clerk_events (subject_id, occurred_at);
-- Analytics count by type and time; the subject rides along so counts of distinct
-- users read the index only.
create index clerk_events_type_occurred_at_subject on clerk_events (event_type, occurred_at)
    include (subject_id);
drop index clerk_events_type_occurred_at;

-- Audience search: prefixes of the address, of either name and of "first last"; and the
-- filters, each with the ID so a page of a rare group or status is read newest first
-- from its index instead of found by walking the whole table.
create index contacts_email_prefix on contacts (lower(email) text_pattern_ops);
create index contacts_first_name_prefix on contacts (lower(first_name) text_pattern_ops);
create index contacts_last_name_prefix on contacts (lower(last_name) text_pattern_ops);
create index contacts_full_name_prefix on contacts (lower(first_name || ' ' || last_name) text_pattern_ops);
create index contacts_user_group_id on contacts (user_group, id);
create index contacts_source_id on contacts (source, id);
create index contacts_waitlist_status_id on contacts (waitlist_status, id) where waitlist_status is not null;

-- A send skipped because the address is suppressed is recorded too, so the deliveries
-- list shows it.
alter table email_deliveries drop constraint email_deliveries_state_check;
alter table email_deliveries add constraint email_deliveries_state_check
    check (state in ('sending', 'sent', 'retrying', 'failed', 'unknown', 'suppressed'));

-- The runs and deliveries lists filter by state, newest (highest ID) first.
create index workflow_runs_state_id on workflow_runs (state, id);
drop index email_deliveries_state;
create index email_deliveries_state_id on email_deliveries (state, id);

-- The first time the log saw each person or organization reach a lifecycle step, kept
-- as events are stored: growth and the waitlist funnel count people, not deliveries,
-- without sorting the log. Kinds: user.created, user.deleted, organization.created,
-- organization.deleted, waitlistEntry.created, and waitlistEntry.invited /
-- waitlistEntry.rejected (an entry update to that status).
create table clerk_event_firsts (
    kind       text        not null,
    subject_id text        not null,
    first_at   timestamptz not null,
    primary key (kind, subject_id)
);

create index clerk_event_firsts_kind_first_at on clerk_event_firsts (kind, first_at);

insert into clerk_event_firsts (kind, subject_id, first_at)
select kind, subject_id, min(occurred_at)
from (select case when event_type = 'waitlistEntry.updated'
                  then 'waitlistEntry.' || (payload #>> '{data,status}') else event_type end as kind,
             subject_id, occurred_at
      from clerk_events
      where subject_id is not null
        and (event_type in ('user.created', 'user.deleted', 'organization.created',
                            'organization.deleted', 'waitlistEntry.created')
             or (event_type = 'waitlistEntry.updated'
                 and payload #>> '{data,status}' in ('invited', 'rejected')))) as firsts
group by kind, subject_id;
-- Events per UTC day and type, counted as events are stored, so events by type over a
-- long range reads a few hundred rows instead of the log. Each connection adds to its
-- own shard (its backend PID modulo 16), so concurrent webhooks do not queue on one
-- row; a day's count is the sum of its shards.
create table clerk_event_counts (
    day        date     not null,
    event_type text     not null,
    shard      smallint not null,
    events     bigint   not null,
    primary key (day, event_type, shard)
);

insert into clerk_event_counts (day, event_type, shard, events)
select (occurred_at at time zone 'UTC')::date, event_type, 0, count(*)
from clerk_events group by 1, 2;

-- Active users: distinct users with a new session, read from this index only.
create index clerk_events_sessions on clerk_events (occurred_at) include (subject_id)
    where event_type = 'session.created';

-- The few user updates that carry an auth health signal: banned, locked, or an address
-- whose verification failed or expired.
create index clerk_events_auth_signals on clerk_events (occurred_at) include (subject_id)
    where event_type = 'user.updated'
      and (payload #>> '{data,banned}' = 'true'
           or payload #>> '{data,locked}' = 'true'
           or jsonb_path_exists(payload, '$.data.email_addresses[*].verification.status ? (@ == "failed" || @ == "expired")'));
create index contacts_graduated_at on contacts (graduated_at) where graduated_at is not null;
create index contacts_waitlist_joined_at on contacts (waitlist_joined_at) where waitlist_joined_at is not null;

-- /metrics counts dead jobs without reading the finished ones.
create index jobs_dead on jobs (id) where state = 'dead';
