-- Mailgun signs only its timestamp and a random token, not the event: each token is
-- taken once, so a signature seen once cannot carry another body.
create table mailgun_tokens (
    token             text        primary key,
    -- The one event it may carry.
    provider_event_id text        not null,
    seen_at           timestamptz not null default now()
);

create index mailgun_tokens_seen_at on mailgun_tokens (seen_at);
