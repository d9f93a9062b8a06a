-- Stored Clerk events waiting to be forwarded to each destination of `[forward.*]`
-- (`tinybird`, `clickhouse`): written in the transaction that stores the event, deleted
-- once the destination has accepted it. Downstream, the svix-id is the dedupe key, so
-- a batch sent again after a crash is counted once.
create table forward_outbox (
    destination text   not null,
    event_id    bigint not null references clerk_events (id) on delete cascade,
    primary key (destination, event_id)
);
