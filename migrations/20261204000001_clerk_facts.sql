-- Clerk facts beyond the user's own fields (README, "Clerk facts"). Each fact is kept
-- by Clerk user ID, whether or not the user has a contact yet (a session or a
-- membership often arrives before `user.created`), and copied onto the user's contact
-- whenever either changes, so conditions, segments and templates read the contact.

-- Per user: the newest sign-in seen, and the Clerk Billing subscription as of the
-- newest billing event applied (`billing_version`; older deliveries change nothing).
create table clerk_user_facts (
    user_id             text        primary key,
    last_sign_in_at     timestamptz,
    billing_version     timestamptz,
    subscription_status text,
    plan                text,
    trial_ends_at       timestamptz
);

-- Per user and organization: the membership as of its newest event (`version`: the
-- membership's `updated_at`, or the envelope time of its deletion, which wins a tie).
create table clerk_memberships (
    user_id           text        not null,
    organization_id   text        not null,
    role              text,
    organization_name text,
    organization_slug text,
    version           timestamptz not null,
    deleted           boolean     not null default false,
    primary key (user_id, organization_id)
);

create index clerk_memberships_organization on clerk_memberships (organization_id);

alter table contacts
    add column clerk_banned              boolean     not null default false,
    add column clerk_locked              boolean     not null default false,
    -- When a lockout ends (Clerk sends no event then); null while locked for good.
    add column clerk_locked_until        timestamptz,
    add column clerk_last_sign_in_at     timestamptz,
    -- [{"id", "name", "slug", "role"}], ordered by organization ID.
    add column clerk_organizations       jsonb       not null default '[]',
    add column clerk_subscription_status text,
    add column clerk_plan                text,
    add column clerk_trial_ends_at       timestamptz;

-- Who an event is about, now also for memberships (the member) and Clerk Billing (the
-- paying user), so a contact's timeline shows them.
drop index clerk_events_subject;
drop index clerk_events_type_occurred_at_subject;
alter table clerk_events drop column subject_id;
alter table clerk_events add column subject_id text
    generated always as (coalesce(
        payload #>> '{data,user_id}',
        payload #>> '{data,public_user_data,user_id}',
        payload #>> '{data,payer,user_id}',
        payload #>> '{data,id}'
    )) stored;
create index clerk_events_subject on clerk_events (subject_id, occurred_at);
create index clerk_events_type_occurred_at_subject on clerk_events (event_type, occurred_at)
    include (subject_id);
