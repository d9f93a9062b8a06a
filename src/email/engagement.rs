//! Records the opens and clicks the tracking links report, and tells the webhook
//! endpoints of each email's first human open (`email.opened`) and first click
//! (`email.clicked`).

use sqlx::PgPool;
use uuid::Uuid;

use super::tracking::{Tracked, is_machine};
use crate::webhooks::Endpoints;
use crate::webhooks::news::email_news;

/// Characters of a user agent kept.
const KEPT_USER_AGENT_CHARS: usize = 300;

/// What a tracking link reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engagement {
    Open,
    Click,
}

/// Stores one open or click of the email `tracked` names; nothing when Roster has no
/// such sent email (deleted since).
pub async fn record_engagement(
    pool: &PgPool,
    webhooks: &Endpoints,
    kind: Engagement,
    tracked: &Tracked,
    user_agent: Option<&str>,
) -> sqlx::Result<()> {
    let machine = is_machine(user_agent);
    let user_agent: Option<String> = user_agent.map(|agent| {
        agent
            .chars()
            .filter(|c| !c.is_control())
            .take(KEPT_USER_AGENT_CHARS)
            .collect()
    });
    let kind_name = match kind {
        Engagement::Open => "open",
        Engagement::Click => "click",
    };
    let mut tx = pool.begin().await?;
    let Some(delivery) = sqlx::query!(
        "select id, transactional from email_deliveries where run_id = $1 and step = $2 and sent_at is not null
         for update",
        tracked.run,
        tracked.step
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(());
    };
    let first = sqlx::query_scalar!(
        r#"select not exists (select 1 from email_engagements
                              where delivery_id = $1 and kind = $2 and not machine) as "first!""#,
        delivery.id,
        kind_name
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into email_engagements (id, delivery_id, kind, machine, url, user_agent)
         values ($1, $2, $3, $4, $5, $6)",
        Uuid::now_v7(),
        delivery.id,
        kind_name,
        machine,
        tracked.url,
        user_agent,
    )
    .execute(&mut *tx)
    .await?;
    metrics::counter!(crate::monitoring::EMAIL_ENGAGEMENTS, "kind" => kind_name, "machine" => machine.to_string())
        .increment(1);
    // As Loops: opens and clicks of marketing email only, each email's first.
    if first && !machine && !delivery.transactional {
        let event = match kind {
            Engagement::Open => "email.opened",
            Engagement::Click => "email.clicked",
        };
        email_news(&mut tx, webhooks, event, delivery.id).await?;
    }
    tx.commit().await
}
