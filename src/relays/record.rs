//! Stores each relay event once (by the relay's event id), matches it to the delivery
//! it is about (by the Message-ID header, or the relay's own message id kept from its
//! SMTP answer, and the recipient), and applies its effect:
//! - a hard bounce suppresses the address, with the relay's reason;
//! - a soft bounce is counted; 3 within any 7 days suppress the address;
//! - a complaint unsubscribes the contact (`contact.unsubscribed`, via `complaint`) and
//!   suppresses the address;
//! - a delivery marks the delivery delivered;
//! - and each is told to the webhook endpoints (`email.hardBounced`, ...).
//!
//! An event for a message Roster did not send (or no longer knows) is kept for
//! inspection with no delivery and changes nothing: a shared relay account reports
//! other senders' mail too. Each event is its own transaction, so a batch that fails
//! half-way is retried whole by the relay and its stored half is skipped as repeats.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{EventKind, Provider, RelayEvent};
use crate::contacts::ContactError;
use crate::contacts::lifecycle::Via;
use crate::contacts::store::lock_person;
use crate::contacts::write::{Change, set_subscribed};
use crate::email::suppressions::suppress;
use crate::monitoring;
use crate::webhooks::news::email_news;
use crate::workflows::Workflows;
use crate::workflows::runs::start_for_change;

/// Soft bounces within `SOFT_BOUNCE_WINDOW` that suppress an address.
pub const SOFT_BOUNCES_TO_SUPPRESS: i64 = 3;
const SOFT_BOUNCE_WINDOW: &str = "7 days";

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored and matched to its delivery; its effect applied.
    Applied,
    /// Stored, but for a message Roster does not know.
    Unmatched,
    /// Seen before: nothing done.
    Duplicate,
    /// Its signature's token carried another event before: refused (401).
    ReusedSignature,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unmatched => "unmatched",
            Self::Duplicate => "duplicate",
            Self::ReusedSignature => "reused_signature",
        }
    }
}

/// Records every event of a verified post, in order.
pub async fn record_events(
    pool: &PgPool,
    workflows: &Workflows,
    provider: Provider,
    events: &[RelayEvent],
) -> Result<Vec<Outcome>, ContactError> {
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        let mut tx = pool.begin().await?;
        let outcome = record_event(&mut tx, workflows, provider, event).await?;
        tx.commit().await?;
        let labels = [
            ("provider", provider.as_str()),
            ("kind", event.kind.as_str()),
            ("outcome", outcome.as_str()),
        ];
        metrics::counter!(monitoring::RELAY_EVENTS, &labels).increment(1);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The delivery an event is about, and its run's contact.
struct Matched {
    delivery: Uuid,
    contact: Option<Uuid>,
}

async fn record_event(
    tx: &mut PgConnection,
    workflows: &Workflows,
    provider: Provider,
    event: &RelayEvent,
) -> Result<Outcome, ContactError> {
    // Every event of an address, one at a time, this lock first: soft bounces are
    // counted without a race, and a complaint takes the contact's locks after it.
    lock_person(tx, None, Some(&event.recipient)).await?;
    if let Some(token) = &event.signature_token
        && !take_signature_token(tx, token, &event.provider_event_id).await?
    {
        return Ok(Outcome::ReusedSignature);
    }
    let matched = find_delivery(tx, event).await?;
    let stored = sqlx::query_scalar!(
        "insert into email_events (id, provider, provider_event_id, kind, provider_kind, delivery_id,
                                   recipient, reason, occurred_at, detail)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         on conflict (provider, provider_event_id) do nothing
         returning id",
        Uuid::now_v7(),
        provider.as_str(),
        event.provider_event_id,
        event.kind.as_str(),
        event.provider_kind,
        matched.as_ref().map(|m| m.delivery),
        event.recipient,
        event.reason,
        event.occurred_at,
        event.detail,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if stored.is_none() {
        // A repeat of an event kept unmatched (it came before Roster knew the relay's
        // id for the message) is applied now that it matches.
        let now_matched = match &matched {
            Some(matched) => sqlx::query_scalar!(
                "update email_events set delivery_id = $3
                 where provider = $1 and provider_event_id = $2 and delivery_id is null
                 returning id",
                provider.as_str(),
                event.provider_event_id,
                matched.delivery,
            )
            .fetch_optional(&mut *tx)
            .await?
            .is_some(),
            None => false,
        };
        if !now_matched {
            return Ok(Outcome::Duplicate);
        }
    }
    let Some(matched) = matched else {
        tracing::info!(
            provider = provider.as_str(),
            kind = event.kind.as_str(),
            "relay event for an unknown message kept"
        );
        return Ok(Outcome::Unmatched);
    };
    let reason = |what: &str| match &event.reason {
        Some(reason) => format!("{what} reported by {}: {reason}", provider.as_str()),
        None => format!("{what} reported by {}", provider.as_str()),
    };
    match event.kind {
        EventKind::Delivered => mark_delivered(tx, matched.delivery, event.occurred_at).await?,
        EventKind::HardBounce => suppress(tx, &event.recipient, &reason("hard bounce")).await?,
        EventKind::SoftBounce => {
            if soft_bounces_suppress(tx, &event.recipient, event.occurred_at).await? {
                let what = format!(
                    "{SOFT_BOUNCES_TO_SUPPRESS} soft bounces within {SOFT_BOUNCE_WINDOW}, the last"
                );
                suppress(tx, &event.recipient, &reason(&what)).await?;
            }
        }
        EventKind::Complaint => {
            suppress(tx, &event.recipient, &reason("spam complaint")).await?;
            if let Some(contact) = matched.contact {
                unsubscribe(tx, workflows, contact).await?;
            }
        }
        EventKind::Other => {}
    }
    let news = match event.kind {
        EventKind::Delivered => Some("email.delivered"),
        EventKind::HardBounce => Some("email.hardBounced"),
        EventKind::SoftBounce => Some("email.softBounced"),
        EventKind::Complaint => Some("email.spamReported"),
        EventKind::Other => None,
    };
    if let Some(news) = news {
        email_news(tx, workflows.webhooks(), news, matched.delivery).await?;
    }
    Ok(Outcome::Applied)
}

/// The newest delivery to this recipient whose Message-ID, or relay message id, the
/// event names.
async fn find_delivery(
    conn: &mut PgConnection,
    event: &RelayEvent,
) -> sqlx::Result<Option<Matched>> {
    let found = sqlx::query!(
        "select d.id, r.contact_id
         from email_deliveries d join workflow_runs r on r.id = d.run_id
         where ((d.message_id <> '' and btrim(d.message_id, '<> ') = btrim($1, '<> '))
                or d.provider_message_id = any($2))
           and lower(d.recipient) = $3
         order by d.id desc limit 1",
        event.message_id.as_deref(),
        &event.provider_message_ids,
        event.recipient,
    )
    .fetch_optional(conn)
    .await?;
    Ok(found.map(|row| Matched {
        delivery: row.id,
        contact: row.contact_id,
    }))
}

/// Takes a single-use signature token for this event; `false` when it carried
/// another event before. Tokens older than a day (past any fresh signature) go.
async fn take_signature_token(
    conn: &mut PgConnection,
    token: &str,
    event_id: &str,
) -> sqlx::Result<bool> {
    sqlx::query!("delete from mailgun_tokens where seen_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    let carried = sqlx::query_scalar!(
        "with taken as (
           insert into mailgun_tokens (token, provider_event_id) values ($1, $2)
           on conflict (token) do nothing returning provider_event_id)
         select provider_event_id as \"event!\" from taken
         union all
         select provider_event_id from mailgun_tokens where token = $1",
        token,
        event_id
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(carried.iter().all(|carried| carried == event_id))
}

/// Keeps the earliest delivery time reported.
async fn mark_delivered(
    conn: &mut PgConnection,
    delivery: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update email_deliveries set delivered_at = least(coalesce(delivered_at, $2), $2) where id = $1",
        delivery,
        at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether some 7-day window holding this soft bounce holds soft bounces of 3
/// different emails (a relay reports each retry of one delayed email; that is one).
/// Checked as each arrives, so whatever order they arrive in, the last finds them all.
async fn soft_bounces_suppress(
    conn: &mut PgConnection,
    recipient: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (
             select 1 from email_events s
             where s.recipient = $1 and s.kind = 'soft_bounce' and s.delivery_id is not null
               and s.occurred_at between $2::timestamptz - $3::text::interval and $2::timestamptz
               and (select count(distinct x.delivery_id) from email_events x
                    where x.recipient = $1 and x.kind = 'soft_bounce' and x.delivery_id is not null
                      and x.occurred_at between s.occurred_at and s.occurred_at + $3::text::interval) >= $4
           ) as "suppress!""#,
        recipient,
        at,
        SOFT_BOUNCE_WINDOW,
        SOFT_BOUNCES_TO_SUPPRESS,
    )
    .fetch_one(conn)
    .await
}

/// A complaint unsubscribes the contact, as its unsubscribe link would.
async fn unsubscribe(
    tx: &mut PgConnection,
    workflows: &Workflows,
    contact: Uuid,
) -> Result<(), ContactError> {
    if let Some(upserted) = set_subscribed(tx, contact, false).await?
        && upserted.change == Change::Unsubscribed
    {
        tracing::info!(contact_id = %contact, "contact unsubscribed after a spam complaint");
        start_for_change(tx, workflows, &upserted, Via::Complaint).await?;
    }
    Ok(())
}
