-- `roster clerk backfill`: where each listing of Clerk's Backend API stands, committed
-- with each page applied, so a backfill that stopped resumes at the page it was on.
-- Users are paged by their creation time (`after_created_at`, in ms, and how many users
-- created in that very millisecond are done), so users deleted in Clerk meanwhile do
-- not shift the pages; waitlist entries by offset.
create table clerk_backfills (
    listing          text        primary key check (listing in ('users', 'waitlist_entries')),
    next_offset      integer     not null,
    after_created_at bigint,
    done_at_cursor   integer     not null default 0,
    started_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    finished_at timestamptz
);

-- `roster clerk reconcile` and `[clerk.reconcile]`: each run and the drift it found,
-- which /metrics reports (`roster_clerk_drift`) whichever process ran it.
create table clerk_reconciles (
    id                bigint      generated always as identity primary key,
    started_at        timestamptz not null default now(),
    finished_at       timestamptz,
    missing_in_roster integer,
    missing_in_clerk  integer,
    different         integer,
    fixed             integer
);

create index clerk_reconciles_started_at on clerk_reconciles (started_at);
