-- 20261204000001_clerk_facts dropped and re-added clerk_events.subject_id, and with the
-- column went the two partial indexes that include it; it made the other two again but
-- not these. Without them the auth analytics read every user.updated of each bucket
-- (46 ms for 90 days over 1,000,000 events, against 3 ms with the index), and active
-- users read the wider (event_type, occurred_at) index.

-- Active users: distinct users with a new session, read from this index only.
create index if not exists clerk_events_sessions on clerk_events (occurred_at) include (subject_id)
    where event_type = 'session.created';

-- The few user updates that carry an auth health signal: banned, locked, or an address
-- whose verification failed or expired.
create index if not exists clerk_events_auth_signals on clerk_events (occurred_at) include (subject_id)
    where event_type = 'user.updated'
      and (payload #>> '{data,banned}' = 'true'
           or payload #>> '{data,locked}' = 'true'
           or jsonb_path_exists(payload, '$.data.email_addresses[*].verification.status ? (@ == "failed" || @ == "expired")'));
