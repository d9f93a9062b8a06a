-- The table Roster's [forward.clickhouse] inserts into: one row per stored Clerk event
-- (verified, deduplicated and redacted by Roster), as `INSERT INTO clerk_events FORMAT
-- JSONEachRow`. A retried batch inserts its rows again; the ReplacingMergeTree keeps
-- one row per svix_id once parts merge, and the shipped queries read it with FINAL so
-- they count each event once before that. Works on ClickHouse 18.16 (Debian's) and
-- later. Times are in milliseconds since 1970, UTC.
CREATE TABLE IF NOT EXISTS clerk_events (
    svix_id String,
    event_type String,
    -- data.user_id, else data.id: the person (or organization) the event is about.
    subject_id String,
    -- data.status ('' when none): a waitlist entry's invited or rejected.
    status String,
    occurred_at DateTime('UTC'),
    occurred_at_ms Int64,
    received_at_ms Int64,
    -- What Roster's contact sync reads: the person's address, lowercased (a user's
    -- primary one, a waitlist entry's; '' for other events), data.created_at (0 when
    -- none), and the version it orders a subject's events by (data.updated_at, else
    -- occurred_at_ms).
    email String,
    created_at_ms Int64,
    updated_at_ms Int64,
    -- The event's JSON as Roster stores it.
    payload String
) ENGINE = ReplacingMergeTree(received_at_ms)
ORDER BY svix_id
