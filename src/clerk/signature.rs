//! Svix signature verification over the raw request body, with every configured secret
//! (several during a rotation) and Svix's 5-minute timestamp tolerance.

use actix_web::http::header::HeaderMap as ActixHeaderMap;
use secrecy::{ExposeSecret, SecretString};
use svix::webhooks::{Webhook, WebhookError};

/// Header names Svix signs with; the unbranded `webhook-*` spellings are accepted too.
const SIGNATURE_HEADERS: [&str; 6] = [
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Why a delivery was refused, as told to the sender.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("webhook signing is not configured: set CLERK_WEBHOOK_SECRET")]
    NotConfigured,
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the {0} header is malformed")]
    MalformedHeader(&'static str),
    #[error("the signature timestamp is more than 5 minutes old")]
    TimestampTooOld,
    #[error("the signature timestamp is more than 5 minutes in the future")]
    TimestampInFuture,
    #[error("no signature matches the body with any configured secret")]
    NoMatch,
}

/// Built once at start from `CLERK_WEBHOOK_SECRET`.
pub struct SignatureVerifier {
    webhooks: Vec<Webhook>,
}

impl SignatureVerifier {
    /// Secrets were validated with the settings; one that still fails is skipped.
    pub fn new(secrets: &[SecretString]) -> Self {
        let webhooks = secrets
            .iter()
            .filter_map(|secret| Webhook::new(secret.expose_secret()).ok())
            .collect();
        Self { webhooks }
    }

    /// Checks the signature and returns the message ID (`svix-id` or `webhook-id`).
    pub fn verify(&self, headers: &ActixHeaderMap, body: &[u8]) -> Result<String, SignatureError> {
        if self.webhooks.is_empty() {
            return Err(SignatureError::NotConfigured);
        }
        // svix speaks `http` 1.x; actix-web has its own header map, so copy what is signed.
        let mut signed = http::HeaderMap::new();
        for name in SIGNATURE_HEADERS {
            if let Some(value) = headers.get(name)
                && let Ok(value) = http::HeaderValue::from_bytes(value.as_bytes())
            {
                signed.insert(name, value);
            }
        }
        let mut error = SignatureError::NoMatch;
        for webhook in &self.webhooks {
            match webhook.verify(body, &signed) {
                Ok(()) => return message_id(&signed),
                // Only a wrong key is worth trying the next secret for.
                Err(WebhookError::InvalidSignature) => {}
                Err(other) => {
                    error = describe(other);
                    break;
                }
            }
        }
        Err(error)
    }
}

fn message_id(headers: &http::HeaderMap) -> Result<String, SignatureError> {
    headers
        .get("svix-id")
        .or_else(|| headers.get("webhook-id"))
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.trim().is_empty())
        .map(str::to_owned)
        .ok_or(SignatureError::MalformedHeader("svix-id"))
}

fn describe(error: WebhookError) -> SignatureError {
    match error {
        WebhookError::MissingHeader(name) => SignatureError::MissingHeader(svix_header(name)),
        WebhookError::InvalidHeader(name) => SignatureError::MalformedHeader(svix_header(name)),
        WebhookError::InvalidTimestamp => SignatureError::MalformedHeader("svix-timestamp"),
        WebhookError::TimestampTooOldError => SignatureError::TimestampTooOld,
        WebhookError::FutureTimestampError => SignatureError::TimestampInFuture,
        // A body that is not UTF-8 cannot carry a valid Svix signature.
        _ => SignatureError::NoMatch,
    }
}

fn svix_header(short_name: &str) -> &'static str {
    match short_name {
        "id" => "svix-id",
        "timestamp" => "svix-timestamp",
        _ => "svix-signature",
    }
}

/// A POST of `body` to `url` as Svix delivers it: its `svix-*` headers signed with
/// `secret` now, under message ID `id`. What `roster send-test-event` and the benchmarks
/// send.
pub fn signed_delivery(
    client: &reqwest::Client,
    url: url::Url,
    secret: &str,
    id: &str,
    body: Vec<u8>,
) -> Result<reqwest::RequestBuilder, WebhookError> {
    let timestamp = chrono::Utc::now().timestamp();
    let signature = Webhook::new(secret)?.sign(id, timestamp, &body)?;
    Ok(client
        .post(url)
        .header("content-type", "application/json")
        .header("svix-id", id)
        .header("svix-timestamp", timestamp.to_string())
        .header("svix-signature", signature)
        .body(body))
}
