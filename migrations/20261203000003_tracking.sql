-- Opens (the pixel) and clicks (the tracked links) of marketing email. Machine opens
-- (mail providers' image proxies, Apple Mail Privacy Protection) are kept apart.
create table email_engagements (
    id          uuid        primary key,
    delivery_id uuid        not null references email_deliveries (id) on delete cascade,
    kind        text        not null check (kind in ('open', 'click')),
    machine     boolean     not null,
    url         text,
    user_agent  text,
    at          timestamptz not null default now()
);

create index email_engagements_delivery on email_engagements (delivery_id, kind);
create index email_engagements_at on email_engagements (at);

-- A campaign can be sent untracked (`track = false`).
alter table campaigns add column track boolean not null default true;
