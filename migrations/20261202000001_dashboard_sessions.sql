-- Dashboard sessions (actix-session's state), so that logging out ends a session on
-- the server. The cookie holds a random key; only its SHA-256 is stored, so a read of
-- this table yields no cookie that works.
create table dashboard_sessions (
    key_hash bytea primary key,
    state jsonb not null,
    expires_at timestamptz not null
);

create index dashboard_sessions_expires_at on dashboard_sessions (expires_at);
