//! The delivery log and the endpoints' health, as the dashboard shows them.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Endpoints;

/// One message to one endpoint.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedMessage {
    pub id: String,
    pub endpoint: String,
    pub event: String,
    pub state: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The newest `limit` messages.
pub async fn recent_messages(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<LoggedMessage>> {
    sqlx::query_as!(
        LoggedMessage,
        "select id, endpoint, event, state, attempts, last_status, last_error, created_at, delivered_at
         from webhook_messages order by created_at desc, id desc limit $1",
        limit
    )
    .fetch_all(pool)
    .await
}

/// A configured endpoint and how it fares.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealth {
    pub url: String,
    pub events: Vec<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub pending: i64,
}

/// Every configured endpoint, in the config file's order.
pub async fn endpoint_health(
    pool: &PgPool,
    endpoints: &Endpoints,
) -> sqlx::Result<Vec<EndpointHealth>> {
    let mut health = Vec::new();
    for endpoint in endpoints.iter() {
        let row = sqlx::query!(
            r#"select e.failing_since, e.disabled_at, e.disabled_reason,
                      (select count(*) from webhook_messages m
                       where m.endpoint = $1 and m.state = 'pending') as "pending!"
               from (select 1) as one left join webhook_endpoints e on e.url = $1"#,
            endpoint.url
        )
        .fetch_one(pool)
        .await?;
        health.push(EndpointHealth {
            url: endpoint.url.clone(),
            events: endpoint.events.clone(),
            failing_since: row.failing_since,
            disabled_at: row.disabled_at,
            disabled_reason: row.disabled_reason,
            pending: row.pending,
        });
    }
    Ok(health)
}

/// The configured endpoints that are disabled (the dashboard's warning).
pub async fn disabled_endpoints(pool: &PgPool, endpoints: &Endpoints) -> sqlx::Result<Vec<String>> {
    let urls: Vec<&str> = endpoints.iter().map(|e| e.url.as_str()).collect();
    if urls.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar!(
        "select url from webhook_endpoints where disabled_at is not null and url = any($1)",
        &urls as &[&str]
    )
    .fetch_all(pool)
    .await
}
