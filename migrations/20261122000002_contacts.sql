-- Contacts: the audience, shaped like Loops' contacts, keyed by Clerk user ID when the
-- contact is a Clerk user and by case-insensitive email always.
create table contacts (
    id                  uuid        primary key,
    email               text        not null,
    first_name          text,
    last_name           text,
    source              text        not null,
    subscribed          boolean     not null default true,
    user_group          text,
    user_id             text        unique,
    mailing_lists       jsonb       not null default '{}',
    properties          jsonb       not null default '{}',
    opt_in_status       text,
    -- `data.updated_at` of the newest Clerk user event applied: older deliveries lose.
    clerk_updated_at    timestamptz,
    -- Set when a waitlist contact became a Clerk user.
    graduated_at        timestamptz,
    unsubscribed_at     timestamptz,
    waitlist_entry_id   text,
    -- pending, invited, completed or rejected (kept as Clerk sends it).
    waitlist_status     text,
    waitlist_joined_at  timestamptz,
    -- `data.updated_at` of the newest waitlist event applied.
    waitlist_updated_at timestamptz,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now()
);

create unique index contacts_email_lower on contacts (lower(email));
create index contacts_created_at on contacts (created_at);

-- A Clerk user deleted at `deleted_at` (the envelope time of `user.deleted`). Kept after
-- the contact is gone so that a late, older `user.created`/`user.updated`, or waitlist
-- event for the address the user had, cannot bring the person back.
create table clerk_user_deletions (
    user_id    text        primary key,
    deleted_at timestamptz not null,
    email      text
);

create index clerk_user_deletions_email_lower on clerk_user_deletions (lower(email));
