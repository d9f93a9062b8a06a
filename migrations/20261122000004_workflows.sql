-- Workflow runs: one contact's way through one workflow. The contact is copied at the
-- start, so a goodbye email still reaches the address a deleted contact had.
create table workflow_runs (
    id            uuid        primary key,
    workflow      text        not null,
    -- The contact's ID for "once per contact" workflows; contact and triggering event
    -- for "every time" ones. Unique, so a redelivered trigger starts nothing new.
    entry_key     text        not null,
    contact_id    uuid        references contacts (id) on delete set null,
    contact       jsonb       not null,
    trigger_event text        not null,
    event         jsonb       not null default '{}',
    state         text        not null default 'active'
                  check (state in ('active', 'completed', 'exited')),
    -- The step to run next (0-based).
    current_step  integer     not null default 0,
    exit_reason   text,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    finished_at   timestamptz,
    unique (workflow, entry_key)
);

create index workflow_runs_contact on workflow_runs (contact_id);
create index workflow_runs_state on workflow_runs (workflow, state);

-- One email per (run, step), recorded before it is handed to SMTP.
create table email_deliveries (
    id            uuid        primary key,
    run_id        uuid        not null references workflow_runs (id) on delete cascade,
    step          integer     not null,
    template      text        not null,
    recipient     text        not null,
    message_id    text        not null,
    transactional boolean     not null,
    -- sending: handed (or about to be handed) to SMTP; sent: accepted; retrying: a
    -- transient failure, safe to send again; failed: refused for good (5xx); unknown:
    -- the process died while sending, so it is not sent again (at most once).
    state         text        not null default 'sending'
                  check (state in ('sending', 'sent', 'retrying', 'failed', 'unknown')),
    smtp_response text,
    attempts      integer     not null default 0,
    created_at    timestamptz not null default now(),
    sent_at       timestamptz,
    unique (run_id, step)
);

create index email_deliveries_state on email_deliveries (state, created_at);

-- Addresses that hard-bounced (a 5xx answer): never sent to again until lifted.
create table suppressions (
    email      text        primary key check (email = lower(email)),
    reason     text        not null,
    created_at timestamptz not null default now()
);
