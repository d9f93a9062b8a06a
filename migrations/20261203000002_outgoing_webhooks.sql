-- Outgoing webhooks: each event posted to each subscribed endpoint is a message,
-- written in the transaction of what caused it and delivered by a job (at least once,
-- the same webhook-id on every attempt). An endpoint failing for days is disabled.

-- The subject each email was sent with (the webhooks' `email.subject`).
alter table email_deliveries add column subject text;

-- What Roster knows of each configured endpoint (the URL and secret live in the
-- config file): since when it fails, and whether it was disabled for it.
create table webhook_endpoints (
    url             text        primary key,
    -- The start of the failures since the last success; a failure a day or more
    -- after the one before starts a new streak (nothing was pending in between).
    failing_since   timestamptz,
    last_failed_at  timestamptz,
    disabled_at     timestamptz,
    disabled_reason text
);

create table webhook_messages (
    -- The `webhook-id`: one per event, the same for every endpoint and attempt.
    id           text        not null,
    endpoint     text        not null,
    event        text        not null,
    payload      jsonb       not null,
    state        text        not null default 'pending'
                 check (state in ('pending', 'delivered', 'failed', 'dropped')),
    attempts     integer     not null default 0,
    last_status  integer,
    last_error   text,
    created_at   timestamptz not null default now(),
    delivered_at timestamptz,
    primary key (id, endpoint)
);

create index webhook_messages_created on webhook_messages (created_at desc);
create index webhook_messages_pending on webhook_messages (endpoint) where state = 'pending';

-- Deliverability figures count the emails sent in a range.
create index email_deliveries_sent_at on email_deliveries (sent_at) where sent_at is not null;
