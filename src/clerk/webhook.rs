//! `POST /webhooks/clerk`: verify, then store the event, apply its contact change and
//! start the workflows it triggers in one short transaction, then answer. Svix retries
//! anything but a 2xx, so a 200 is only ever sent for an event that is durably stored.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, post, web};
use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;

use super::apply::{StoredEvent, SyncEvent, apply};
use super::envelope::{Envelope, EnvelopeError};
use super::signature::{SignatureError, SignatureVerifier};
use super::sync::{ContactChange, Mode, SyncError};
use crate::config::clerk::ClerkSettings;
use crate::events::insert_clerk_event;
use crate::forward::Forwarder;
use crate::telemetry::error_chain;
use crate::workflows::Workflows;
use crate::{db, monitoring};

/// Clerk's payloads are a few KiB; anything over this is refused before it is read whole.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("the body is larger than 1 MiB")]
    TooLarge,
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error("the body has a value PostgreSQL cannot store (too long, or out of range)")]
    Unstorable,
    #[error("{0}; retry later")]
    Conflict(SyncError),
    #[error("the database is unavailable, retry later")]
    DatabaseUnavailable(#[source] sqlx::Error),
    #[error("the event could not be stored")]
    Unexpected(#[source] sqlx::Error),
}

impl From<sqlx::Error> for WebhookError {
    fn from(error: sqlx::Error) -> Self {
        // A value PostgreSQL refuses: the same body would fail forever.
        if db::is_bad_data(&error) {
            Self::Unstorable
        } else if db::is_transient(&error) {
            Self::DatabaseUnavailable(error)
        } else {
            Self::Unexpected(error)
        }
    }
}

impl From<SyncError> for WebhookError {
    fn from(error: SyncError) -> Self {
        match error {
            SyncError::Database(error) => error.into(),
            conflict => Self::Conflict(conflict),
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::Envelope(_) | Self::UnreadableBody | Self::Unstorable => StatusCode::BAD_REQUEST,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::DatabaseUnavailable(_) | Self::Conflict(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // Refused before the type is known or trusted: counted by outcome alone.
        let outcome = match self {
            Self::Signature(_) => "unauthorized",
            Self::TooLarge => "too_large",
            Self::Envelope(_) | Self::UnreadableBody | Self::Unstorable => "bad_request",
            Self::Conflict(_) | Self::DatabaseUnavailable(_) => "unavailable",
            Self::Unexpected(_) => "error",
        };
        let labels = [
            ("type", "unknown".to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        metrics::counter!(monitoring::WEBHOOKS, &labels).increment(1);
        if let Self::Signature(_) = self {
            metrics::counter!(monitoring::SIGNATURE_FAILURES).increment(1);
        }
        if status.is_server_error() {
            tracing::error!(error = %error_chain(self), "webhook failed");
        } else {
            tracing::info!(status = status.as_u16(), reason = %self, "webhook refused");
        }
        HttpResponse::build(status).json(json!({ "error": self.to_string() }))
    }
}

#[post("/webhooks/clerk")]
#[tracing::instrument(name = "clerk_webhook", skip_all, fields(svix_id = tracing::field::Empty))]
pub async fn receive_clerk_webhook(
    request: HttpRequest,
    payload: web::Payload,
    verifier: web::Data<SignatureVerifier>,
    settings: web::Data<ClerkSettings>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
    forwarder: web::Data<Forwarder>,
) -> Result<HttpResponse, WebhookError> {
    let started = Instant::now();
    let body = payload
        .to_bytes_limited(MAX_BODY_BYTES)
        .await
        .map_err(|_| WebhookError::TooLarge)?
        .map_err(|_| WebhookError::UnreadableBody)?;
    let svix_id = verifier.verify(request.headers(), &body)?;
    tracing::Span::current().record("svix_id", svix_id.as_str());
    let ingested = ingest(&pool, &settings, &workflows, &forwarder, &svix_id, &body).await?;
    Ok(answer(
        started,
        ingested.status,
        &svix_id,
        &ingested.event_type,
        ingested.change,
    ))
}

/// What storing a delivery did.
pub struct Ingested {
    /// `processed`, `duplicate` or `ignored`.
    pub status: &'static str,
    pub event_type: String,
    pub change: Option<ContactChange>,
}

/// Stores a verified delivery (`body`, under `svix_id`) in the raw event log (and the
/// outbox of each destination `forwarder` sends to), applies it and starts the
/// workflows it triggers, in one transaction; a `svix-id` already stored changes
/// nothing.
pub async fn ingest(
    pool: &PgPool,
    settings: &ClerkSettings,
    workflows: &Workflows,
    forwarder: &Forwarder,
    svix_id: &str,
    body: &[u8],
) -> Result<Ingested, WebhookError> {
    let envelope = Envelope::parse(body)?;
    let occurred_at = envelope.timestamp.unwrap_or_else(Utc::now);
    let event = SyncEvent::from_envelope(&envelope, settings, occurred_at)?;
    let payload = envelope.payload_to_store()?;
    let event_type = envelope.event_type.as_ref();

    let mut tx = pool.begin().await?;
    let forward = forwarder.names();
    let stored =
        insert_clerk_event(&mut tx, svix_id, event_type, occurred_at, &payload, forward).await?;
    if !stored {
        tracing::info!(svix_id, event_type, "duplicate delivery");
        return Ok(Ingested {
            status: "duplicate",
            event_type: event_type.to_owned(),
            change: None,
        });
    }
    let stored = StoredEvent {
        svix_id,
        event_type,
        payload: &payload,
        occurred_at,
    };
    let outcome = apply(&mut tx, &event, &stored, Mode::Live, Some(workflows)).await?;
    tx.commit().await?;
    forwarder.wake(pool).await;

    let change = outcome.change;
    let status = if change.is_some() || outcome.facts_changed || outcome.runs_started > 0 {
        "processed"
    } else {
        "ignored"
    };
    tracing::info!(svix_id, event_type, status, contact = ?change, runs = outcome.runs_started, "webhook stored");
    Ok(Ingested {
        status,
        event_type: event_type.to_owned(),
        change,
    })
}

/// The 200 answer, counted by type and status with the time it took.
fn answer(
    started: Instant,
    status: &'static str,
    svix_id: &str,
    event_type: &str,
    change: Option<ContactChange>,
) -> HttpResponse {
    let labels = [
        ("type", event_type.to_owned()),
        ("outcome", status.to_owned()),
    ];
    metrics::counter!(monitoring::WEBHOOKS, &labels).increment(1);
    metrics::histogram!(monitoring::INGEST_SECONDS).record(started.elapsed().as_secs_f64());
    let mut body = json!({ "status": status, "svixId": svix_id, "type": event_type });
    if let Some(change) = change {
        body["contact"] = json!(change);
    }
    HttpResponse::Ok().json(body)
}
