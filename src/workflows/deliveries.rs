//! Email deliveries as read back: one row per (run, step) sent or tried, with its
//! run's workflow and contact; listed by state for the API and the dashboard.

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::state::DeliveryState;
use crate::input::InputError;
use crate::page::{Page, PageQuery, page_of};

/// An email delivery with its run's workflow and contact.
#[derive(Debug, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub run_id: Uuid,
    pub workflow: String,
    pub contact_id: Option<Uuid>,
    pub step: i32,
    pub template: String,
    pub recipient: String,
    pub message_id: String,
    pub transactional: bool,
    pub state: String,
    pub smtp_response: Option<String>,
    pub attempts: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the relay reported it delivered.
    pub delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What relays and tracking reported of it, each once, alphabetically:
    /// `clicked`, `complaint`, `delivered`, `hard_bounce`, `machine_opened` (a mail
    /// provider's proxy fetched the pixel), `opened`, `soft_bounce`.
    pub activity: Vec<String>,
}

impl Delivery {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "runId": self.run_id,
            "workflow": self.workflow,
            "contactId": self.contact_id,
            "step": self.step,
            "template": self.template,
            "recipient": self.recipient,
            "messageId": self.message_id,
            "transactional": self.transactional,
            "state": self.state,
            "smtpResponse": self.smtp_response,
            "attempts": self.attempts,
            "createdAt": self.created_at,
            "sentAt": self.sent_at,
            "deliveredAt": self.delivered_at,
            "activity": self.activity,
        })
    }
}

/// The deliveries of `runs`, newest first.
pub async fn deliveries_of_runs(
    conn: &mut PgConnection,
    runs: &[Uuid],
) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as!(
        Delivery,
        r#"select d.id, d.run_id, r.workflow, r.contact_id, d.step, d.template, d.recipient, d.message_id,
                d.transactional, d.state, d.smtp_response, d.attempts, d.created_at, d.sent_at,
                d.delivered_at,
                array(select kind from (
                        select e.kind from email_events e where e.delivery_id = d.id and e.kind <> 'other'
                        union
                        select case when g.kind = 'click' then 'clicked'
                                    when g.machine then 'machine_opened' else 'opened' end
                        from email_engagements g where g.delivery_id = d.id) as k
                      order by kind) as "activity!"
         from email_deliveries d join workflow_runs r on r.id = d.run_id
         where d.run_id = any($1) order by d.id desc"#,
        runs
    )
    .fetch_all(conn)
    .await
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct DeliveryFilters {
    /// sending, sent, retrying, failed, unknown (the worker stopped mid-send) or
    /// suppressed.
    pub state: Option<String>,
}

/// A page of deliveries, newest first.
pub async fn list_deliveries(
    pool: &PgPool,
    filters: &DeliveryFilters,
    paging: &PageQuery,
) -> Result<Page<Value>, InputError> {
    let state = filters
        .state
        .as_deref()
        .map(|state| DeliveryState::parse("state", state))
        .transpose()?;
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<Uuid>().ok())?;
    let rows = sqlx::query_as!(
        Delivery,
        r#"select d.id, d.run_id, r.workflow, r.contact_id, d.step, d.template, d.recipient, d.message_id,
                d.transactional, d.state, d.smtp_response, d.attempts, d.created_at, d.sent_at,
                d.delivered_at,
                array(select kind from (
                        select e.kind from email_events e where e.delivery_id = d.id and e.kind <> 'other'
                        union
                        select case when g.kind = 'click' then 'clicked'
                                    when g.machine then 'machine_opened' else 'opened' end
                        from email_engagements g where g.delivery_id = d.id) as k
                      order by kind) as "activity!"
         from email_deliveries d join workflow_runs r on r.id = d.run_id
         where ($1::text is null or d.state = $1) and ($2::uuid is null or d.id < $2)
         order by d.id desc limit $3"#,
        state.map(DeliveryState::as_str),
        cursor,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    Ok(page_of(
        rows,
        limit,
        |d| d.id.to_string(),
        Delivery::to_json,
    ))
}
