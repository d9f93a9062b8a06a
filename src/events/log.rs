//! The raw event log as read back: Clerk events as stored (secrets removed), filtered
//! by type and time, newest first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::PgPool;

use crate::input::InputError;
use crate::input::parse_time;
use crate::page::{Page, PageQuery, page_of};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct EventFilters {
    /// A Clerk event type, such as `user.created`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Events at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    pub from: Option<String>,
    /// Events before this time.
    pub to: Option<String>,
}

struct EventRow {
    id: i64,
    svix_id: String,
    event_type: String,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    subject_id: Option<String>,
    /// As stored, never decoded into a tree: an event of any depth is listed.
    payload: String,
}

/// A page of the log, newest first.
pub async fn list_events(
    pool: &PgPool,
    filters: &EventFilters,
    paging: &PageQuery,
) -> Result<Page<StoredEvent>, InputError> {
    let limit = paging.limit()?;
    // The cursor is the last event's time (microseconds) and ID.
    let cursor = paging.cursor(|c| {
        let (micros, id) = c.split_once('_')?;
        Some((
            crate::input::storable_time(DateTime::from_timestamp_micros(micros.parse().ok()?)?)?,
            id.parse::<i64>().ok()?,
        ))
    })?;
    let from = filters
        .from
        .as_deref()
        .map(|t| parse_time("from", t))
        .transpose()?;
    let to = filters
        .to
        .as_deref()
        .map(|t| parse_time("to", t))
        .transpose()?;
    let (cursor_at, cursor_id) = cursor.unzip();
    let rows = sqlx::query_as!(
        EventRow,
        "select id, svix_id, event_type, occurred_at, received_at, subject_id, payload::text as \"payload!\"
         from clerk_events
         where ($1::text is null or event_type = $1)
           and ($2::timestamptz is null or occurred_at >= $2)
           and ($3::timestamptz is null or occurred_at < $3)
           and ($4::timestamptz is null or (occurred_at, id) < ($4, $5))
         order by occurred_at desc, id desc
         limit $6",
        filters.event_type,
        from,
        to,
        cursor_at,
        cursor_id,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    Ok(page_of(
        rows,
        limit,
        |e| format!("{}_{}", e.occurred_at.timestamp_micros(), e.id),
        |e| StoredEvent {
            id: e.id,
            svix_id: e.svix_id.clone(),
            event_type: e.event_type.clone(),
            occurred_at: e.occurred_at,
            received_at: e.received_at,
            subject_id: e.subject_id.clone(),
            // jsonb's text is JSON: written out as it is, never decoded.
            payload: RawValue::from_string(e.payload.clone())
                .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("JSON")),
        },
    ))
}

/// One event of the log as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub id: i64,
    pub svix_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub subject_id: Option<String>,
    pub payload: Box<RawValue>,
}
