//! `POST /webhooks/email/{ses|postmark|sendgrid|resend|mailgun}`: verify the post as its
//! relay documents, read its events, record them, answer. A relay retries anything but
//! a 2xx, so a 200 is sent only once every event is stored; a refused post stores
//! nothing.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, post, web};
use serde_json::json;
use sqlx::PgPool;

use super::record::{Outcome, record_events};
use super::{Provider, RelayError, Relays, Verified};
use crate::contacts::ContactError;
use crate::db;
use crate::telemetry::error_chain;
use crate::workflows::Workflows;

/// SendGrid batches up to a few thousand events; 5 MiB holds any real one.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RelayWebhookError {
    #[error("no relay webhook here: {0}")]
    NotFound(String),
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("the body is larger than 5 MiB")]
    TooLarge,
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error("the body has a value PostgreSQL cannot store (too long, or out of range)")]
    Unstorable,
    #[error("the database is unavailable, retry later")]
    DatabaseUnavailable(#[source] sqlx::Error),
    #[error("the contact changed while the event was recorded, retry later")]
    Busy,
    #[error("the event could not be stored")]
    Unexpected(#[source] ContactError),
}

impl From<ContactError> for RelayWebhookError {
    fn from(error: ContactError) -> Self {
        match error {
            ContactError::Database(error) if db::is_bad_data(&error) => Self::Unstorable,
            ContactError::Database(error) if db::is_transient(&error) => {
                Self::DatabaseUnavailable(error)
            }
            ContactError::Changed => Self::Busy,
            other => Self::Unexpected(other),
        }
    }
}

impl ResponseError for RelayWebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Relay(RelayError::Unauthorized(_)) => StatusCode::UNAUTHORIZED,
            Self::Relay(RelayError::Malformed(_)) | Self::UnreadableBody | Self::Unstorable => {
                StatusCode::BAD_REQUEST
            }
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Relay(RelayError::Unavailable(_)) | Self::DatabaseUnavailable(_) | Self::Busy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %error_chain(self), "relay webhook failed");
        } else {
            tracing::info!(status = status.as_u16(), reason = %self, "relay webhook refused");
        }
        HttpResponse::build(status).json(json!({ "error": self.to_string() }))
    }
}

#[post("/webhooks/email/{provider}")]
#[tracing::instrument(name = "relay_webhook", skip_all, fields(provider = %provider))]
pub async fn receive_relay_webhook(
    provider: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
    relays: web::Data<Relays>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
) -> Result<HttpResponse, RelayWebhookError> {
    let provider = Provider::parse(&provider)
        .filter(|provider| relays.is_configured(*provider))
        .ok_or_else(|| {
            RelayWebhookError::NotFound(
                "the relay is not one of ses, postmark, sendgrid, resend, mailgun, \
                 or it is not configured"
                    .to_owned(),
            )
        })?;
    let body = payload
        .to_bytes_limited(MAX_BODY_BYTES)
        .await
        .map_err(|_| RelayWebhookError::TooLarge)?
        .map_err(|_| RelayWebhookError::UnreadableBody)?;
    let events = match relays.read(provider, request.headers(), &body).await? {
        Verified::Events(events) => events,
        Verified::Subscription { topic, confirmed } => {
            let status = if confirmed {
                "subscribed"
            } else {
                "unsubscribed"
            };
            tracing::info!(topic, status, "SNS subscription");
            return Ok(HttpResponse::Ok().json(json!({ "status": status, "topic": topic })));
        }
    };
    let outcomes = record_events(&pool, &workflows, provider, &events).await?;
    if outcomes.contains(&Outcome::ReusedSignature) {
        return Err(RelayError::Unauthorized(
            "this signature already carried another event".to_owned(),
        )
        .into());
    }
    let count = |wanted: Outcome| outcomes.iter().filter(|o| **o == wanted).count();
    let (applied, unmatched, duplicates) = (
        count(Outcome::Applied),
        count(Outcome::Unmatched),
        count(Outcome::Duplicate),
    );
    tracing::info!(applied, unmatched, duplicates, "relay events recorded");
    Ok(HttpResponse::Ok().json(json!({
        "status": "ok",
        "applied": applied,
        "unmatched": unmatched,
        "duplicates": duplicates,
    })))
}
