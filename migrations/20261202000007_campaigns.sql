-- Campaigns: one template to an audience (all subscribed contacts, a list's, a
-- segment's, or both), fixed when sending starts. Each recipient is a one-step
-- workflow run (workflow 'campaign', trigger_key the campaign's ID, entry_key
-- 'campaign:contact'), so the runs' uniqueness and the deliveries' claim give one email
-- per (campaign, contact) whatever retries, restarts or replicas do.
create table campaigns (
    id              uuid        primary key,
    name            text        not null,
    template        text        not null,
    mailing_list_id text,
    segment_id      uuid        references audience_segments (id),
    status          text        not null default 'draft'
                    check (status in ('draft', 'scheduled', 'sending', 'sent', 'cancelled')),
    scheduled_at    timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    -- Why it was cancelled without being asked (its segment no longer valid).
    problem         text,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);

create index workflow_runs_campaign on workflow_runs (trigger_key, state) where workflow = 'campaign';
