-- The raw event log: every Clerk webhook delivery we accepted, once per svix-id, with
-- secrets removed. Analytics read it by type and time; replay reads it in order.
create table clerk_events (
    id          bigint generated always as identity primary key,
    svix_id     text        not null unique,
    event_type  text        not null,
    -- The envelope's `timestamp`: when Clerk says the event happened.
    occurred_at timestamptz not null,
    received_at timestamptz not null default now(),
    payload     jsonb       not null
);

create index clerk_events_type_occurred_at on clerk_events (event_type, occurred_at);
create index clerk_events_occurred_at on clerk_events (occurred_at);
