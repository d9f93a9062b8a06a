//! Outgoing webhooks: Roster's events, named and shaped as Loops sends them, posted to
//! the `[[webhooks]]` endpoints subscribed to them and signed as Standard Webhooks
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`), so Svix's libraries
//! verify them.
//!
//! `emit` writes one message per subscribed endpoint in the caller's transaction, with
//! a job that delivers it (`deliver`): at least once, retried with backoff, the same
//! `webhook-id` on every attempt. Nothing is written when no endpoint listens.

pub mod deliver;
pub mod log;
pub mod news;

use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::config::{ConfigFile, MailingList};
use crate::jobs::NOTIFY_CHANNEL;

/// Job kind of one message's delivery; payload `{"message": id, "endpoint": url}`.
pub const DELIVER_JOB: &str = "webhook.deliver";

/// Attempts per message: with backoff capped at an hour (and jittered over its upper
/// half), 200 attempts take 6 to 8 days, past the 5 days after which a failing
/// endpoint is disabled.
const MAX_ATTEMPTS: i32 = 200;

/// The events an endpoint can subscribe to (Loops' names).
pub const EVENT_NAMES: [&str; 16] = [
    "contact.created",
    "contact.deleted",
    "contact.unsubscribed",
    "contact.mailingList.subscribed",
    "contact.mailingList.unsubscribed",
    "campaign.email.sent",
    "loop.email.sent",
    "transactional.email.sent",
    "email.delivered",
    "email.softBounced",
    "email.hardBounced",
    "email.spamReported",
    "email.opened",
    "email.clicked",
    "email.unsubscribed",
    "email.resubscribed",
];

/// A configured endpoint.
#[derive(Debug)]
pub struct Endpoint {
    pub url: String,
    pub secret: SecretString,
    pub events: Vec<String>,
}

/// The configured endpoints, and the mailing lists payloads describe.
#[derive(Debug, Default)]
pub struct Endpoints {
    list: Vec<Endpoint>,
    lists: Vec<MailingList>,
}

impl Endpoints {
    pub fn from_config(file: &ConfigFile) -> Self {
        Self {
            list: file
                .webhooks
                .iter()
                .map(|webhook| Endpoint {
                    url: webhook.url.clone(),
                    secret: webhook.secret.clone(),
                    events: webhook.events.clone(),
                })
                .collect(),
            lists: file.lists.clone(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Endpoint> {
        self.list.iter()
    }

    pub fn get(&self, url: &str) -> Option<&Endpoint> {
        self.list.iter().find(|endpoint| endpoint.url == url)
    }

    /// Whether any endpoint takes `event` (checked before building a payload).
    pub fn wants(&self, event: &str) -> bool {
        self.list
            .iter()
            .any(|e| e.events.iter().any(|name| name == event))
    }

    /// A mailing list as payloads show it.
    fn mailing_list(&self, id: &str) -> Value {
        match self.lists.iter().find(|list| list.id == id) {
            Some(list) => json!({
                "id": list.id, "name": list.name,
                "description": list.description, "isPublic": list.public,
            }),
            None => json!({ "id": id, "name": id, "description": null, "isPublic": false }),
        }
    }
}

/// Writes `event` with these payload fields (besides Loops' envelope: `eventName`,
/// `eventTime`, `webhookSchemaVersion`) for every endpoint subscribed to it and not
/// disabled, each with its delivery job, in the caller's transaction.
pub async fn emit(
    conn: &mut PgConnection,
    endpoints: &Endpoints,
    event: &str,
    mut fields: Value,
) -> sqlx::Result<()> {
    let urls: Vec<&str> = endpoints
        .iter()
        .filter(|e| e.events.iter().any(|name| name == event))
        .map(|e| e.url.as_str())
        .collect();
    if urls.is_empty() {
        return Ok(());
    }
    let mut payload = json!({
        "eventName": event,
        "eventTime": Utc::now().timestamp(),
        "webhookSchemaVersion": "1.0.0",
    });
    if let (Some(payload), Some(fields)) = (payload.as_object_mut(), fields.as_object_mut()) {
        payload.append(fields);
    }
    let id = format!("msg_{}", Uuid::now_v7().simple());
    let queued = sqlx::query!(
        "with written as (
           insert into webhook_messages (id, endpoint, event, payload)
           select $1, u.url, $3, $4 from unnest($2::text[]) as u (url)
           where not exists (select 1 from webhook_endpoints e
                             where e.url = u.url and e.disabled_at is not null)
           returning id, endpoint)
         insert into jobs (kind, key, payload, run_at, max_attempts)
         select $5, id || ' ' || endpoint, jsonb_build_object('message', id, 'endpoint', endpoint), now(), $6
         from written",
        id,
        &urls as &[&str],
        event,
        payload,
        DELIVER_JOB,
        MAX_ATTEMPTS,
    )
    .execute(&mut *conn)
    .await?;
    if queued.rows_affected() > 0 {
        sqlx::query!("select pg_notify($1, '')", NOTIFY_CHANNEL)
            .execute(conn)
            .await?;
    }
    Ok(())
}
