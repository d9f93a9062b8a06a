//! Delivers one message to its endpoint: signed at each attempt (a fresh
//! `webhook-timestamp`, the same `webhook-id`), any 2xx is delivered, anything else is
//! retried by the job queue with backoff. An endpoint that has failed for
//! `DISABLE_AFTER` without a success is disabled: its pending messages fail, and no new
//! ones are written until it is enabled again on the dashboard.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::ExposeSecret;
use sqlx::PgPool;

use super::Endpoints;
use crate::jobs::Job;

/// How long an endpoint may fail without a success before it is disabled.
pub const DISABLE_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(5);
/// The longest Roster waits for an endpoint's answer.
const TIMEOUT: Duration = Duration::from_secs(15);
/// How much of a failing answer is kept.
const KEPT_ANSWER_CHARS: usize = 200;

/// Delivers messages to the configured endpoints.
#[derive(Clone)]
pub struct Deliverer {
    endpoints: Arc<Endpoints>,
    client: reqwest::Client,
}

impl Deliverer {
    pub fn new(endpoints: Arc<Endpoints>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Roster/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { endpoints, client })
    }

    /// Runs a `DELIVER_JOB`: `Err` asks the queue to try again later.
    pub async fn run(&self, pool: &PgPool, job: &Job) -> anyhow::Result<()> {
        let (Some(id), Some(url)) = (
            job.payload["message"].as_str(),
            job.payload["endpoint"].as_str(),
        ) else {
            anyhow::bail!("a webhook delivery without its message");
        };
        let Some(message) = sqlx::query!(
            "select m.payload, e.disabled_at as \"disabled_at?\"
             from webhook_messages m left join webhook_endpoints e on e.url = m.endpoint
             where m.id = $1 and m.endpoint = $2 and m.state = 'pending'",
            id,
            url
        )
        .fetch_optional(pool)
        .await?
        else {
            return Ok(()); // delivered or given up on already
        };
        let Some(endpoint) = self.endpoints.get(url) else {
            end(
                pool,
                id,
                url,
                "dropped",
                "the endpoint is no longer configured",
            )
            .await?;
            return Ok(());
        };
        if message.disabled_at.is_some() {
            end(pool, id, url, "failed", "the endpoint is disabled").await?;
            return Ok(());
        }
        let body = message.payload.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = svix::webhooks::Webhook::new(endpoint.secret.expose_secret())?.sign(
            id,
            timestamp,
            body.as_bytes(),
        )?;
        let answer = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let failure = match answer {
            Ok(response) if response.status().is_success() => {
                delivered(pool, id, url, response.status().as_u16()).await?;
                return Ok(());
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let kept: String = text
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(KEPT_ANSWER_CHARS)
                    .collect();
                (
                    Some(i32::from(status.as_u16())),
                    format!("HTTP {status}: {kept}"),
                )
            }
            Err(error) => (None, crate::telemetry::error_chain(&error.without_url())),
        };
        let last_attempt = job.attempts >= job.max_attempts;
        if failed(pool, id, url, failure.0, &failure.1, last_attempt).await? || last_attempt {
            return Ok(());
        }
        anyhow::bail!("the webhook was not delivered: {}", failure.1)
    }
}

async fn end(pool: &PgPool, id: &str, url: &str, state: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update webhook_messages set state = $3, last_error = $4 where id = $1 and endpoint = $2",
        id,
        url,
        state,
        reason
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn delivered(pool: &PgPool, id: &str, url: &str, status: u16) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "update webhook_messages
         set state = 'delivered', attempts = attempts + 1, last_status = $3, last_error = null,
             delivered_at = now()
         where id = $1 and endpoint = $2",
        id,
        url,
        i32::from(status)
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into webhook_endpoints (url) values ($1)
         on conflict (url) do update set failing_since = null",
        url
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Records a failed attempt; `true` when the endpoint has now failed for
/// `DISABLE_AFTER` and was disabled (its pending messages failed with it).
async fn failed(
    pool: &PgPool,
    id: &str,
    url: &str,
    status: Option<i32>,
    error: &str,
    last_attempt: bool,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "update webhook_messages
         set attempts = attempts + 1, last_status = $3, last_error = $4,
             state = case when $5 then 'failed' else state end
         where id = $1 and endpoint = $2",
        id,
        url,
        status,
        error,
        last_attempt
    )
    .execute(&mut *tx)
    .await?;
    let failing_since = sqlx::query_scalar!(
        r#"insert into webhook_endpoints (url, failing_since, last_failed_at) values ($1, now(), now())
           on conflict (url) do update
             set failing_since = case
                   when webhook_endpoints.failing_since is null
                     or webhook_endpoints.last_failed_at < now() - interval '1 day' then now()
                   else webhook_endpoints.failing_since end,
                 last_failed_at = now()
           returning failing_since as "failing_since!""#,
        url
    )
    .fetch_one(&mut *tx)
    .await?;
    let disable = Utc::now() - failing_since >= DISABLE_AFTER;
    if disable {
        let reason = format!(
            "failing since {} without a success; the last answer: {error}",
            failing_since.format("%Y-%m-%d %H:%M UTC")
        );
        tracing::warn!(endpoint = %redacted(url), "webhook endpoint disabled: {reason}");
        sqlx::query!(
            "update webhook_endpoints set disabled_at = now(), disabled_reason = $2 where url = $1",
            url,
            reason
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "update webhook_messages set state = 'failed', last_error = 'the endpoint was disabled'
             where endpoint = $1 and state = 'pending'",
            url
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(disable)
}

/// An endpoint's URL for logs: scheme, host and path, without credentials or query.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(url) => format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.path()
        ),
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Enables a disabled endpoint again (the dashboard's button); `false` if it was not
/// disabled.
pub async fn enable_endpoint(pool: &PgPool, url: &str) -> sqlx::Result<bool> {
    let enabled = sqlx::query!(
        "update webhook_endpoints
         set disabled_at = null, disabled_reason = null, failing_since = null, last_failed_at = null
         where url = $1 and disabled_at is not null",
        url
    )
    .execute(pool)
    .await?;
    Ok(enabled.rows_affected() > 0)
}
