-- What relays (Amazon SES, Postmark, SendGrid, Resend, Mailgun) report after they
-- accepted an email: deliveries, bounces and spam complaints, by webhook.

-- The relay's own id for a message, read from its SMTP answer ("250 Ok <id>",
-- "250 2.0.0 Ok: queued as <id>"): some relays report events by it alone.
alter table email_deliveries add column provider_message_id text;
-- When the relay reported the email delivered to the recipient's server.
alter table email_deliveries add column delivered_at timestamptz;
create index email_deliveries_message_id on email_deliveries (btrim(message_id, '<> '))
    where message_id <> '';
create index email_deliveries_provider_message_id on email_deliveries (provider_message_id)
    where provider_message_id is not null;

-- One row per event a relay reported, kept whether or not its message is known (an
-- unknown one has no delivery: it stays here for inspection and changes nothing).
-- Idempotent by the relay's event id.
create table email_events (
    id                  uuid        primary key,
    provider            text        not null
                        check (provider in ('ses', 'postmark', 'sendgrid', 'resend', 'mailgun')),
    provider_event_id   text        not null,
    kind                text        not null
                        check (kind in ('delivered', 'hard_bounce', 'soft_bounce', 'complaint', 'other')),
    -- The relay's name for it (`Bounce/Permanent`, `bounce`, `email.complained`, ...).
    provider_kind       text        not null,
    delivery_id         uuid        references email_deliveries (id) on delete set null,
    recipient           text        not null check (recipient = lower(recipient)),
    -- The relay's reason, e.g. the remote server's diagnostic for a bounce.
    reason              text,
    occurred_at         timestamptz not null,
    received_at         timestamptz not null default now(),
    -- The relay's event as it was posted.
    detail              jsonb       not null,
    unique (provider, provider_event_id)
);
create index email_events_delivery on email_events (delivery_id) where delivery_id is not null;
create index email_events_soft_bounces on email_events (recipient, occurred_at)
    where kind = 'soft_bounce' and delivery_id is not null;
create index email_events_received on email_events (received_at);
