//! Mailgun's webhooks: the body carries `signature` (`timestamp`, `token` and their
//! HMAC-SHA256, in hex, under the HTTP webhook signing key; a subaccount's events also
//! carry `parent-signature`, under the primary account's key) and one `event-data`.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;

use super::{EventKind, RelayError, RelayEvent, optional, recipient, required, unix_seconds};
use crate::config::relays::MailgunSettings;

/// How old a signature may be: Mailgun signs each attempt when it sends it.
const MAX_SIGNATURE_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

pub struct Mailgun {
    signing_key: SecretString,
}

impl Mailgun {
    pub fn new(settings: &MailgunSettings) -> Self {
        Self {
            signing_key: settings.signing_key.clone(),
        }
    }

    pub fn read(&self, body: &[u8]) -> Result<Vec<RelayEvent>, RelayError> {
        let post = super::json_body(body)?;
        self.verify(&post["signature"])?;
        let mut event = read_event(&post["event-data"])?;
        event.signature_token = Some(signature_part(&post["signature"], "token")?);
        Ok(vec![event])
    }

    /// The HMAC of timestamp and token, and a timestamp within `MAX_SIGNATURE_AGE`; the
    /// token is then taken once (`record`), so the signature carries no other event.
    fn verify(&self, signature: &Value) -> Result<(), RelayError> {
        let timestamp = signature_part(signature, "timestamp")?;
        let fresh = timestamp
            .parse::<i64>()
            .ok()
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .is_some_and(|at| (chrono::Utc::now() - at).abs() <= MAX_SIGNATURE_AGE);
        if !fresh {
            return Err(RelayError::unauthorized(
                "`signature.timestamp` is not within an hour of now",
            ));
        }
        let token = signature_part(signature, "token")?;
        let matches = |field: &str| {
            let Some(given) = signature[field]
                .as_str()
                .and_then(|hex| hex::decode(hex).ok())
            else {
                return false;
            };
            let mut mac =
                Hmac::<Sha256>::new_from_slice(self.signing_key.expose_secret().as_bytes())
                    .expect("HMAC takes keys of any length");
            mac.update(timestamp.as_bytes());
            mac.update(token.as_bytes());
            mac.verify_slice(&given).is_ok()
        };
        if matches("signature") || matches("parent-signature") {
            Ok(())
        } else {
            Err(RelayError::unauthorized(
                "`signature.signature` does not match with the configured signing key",
            ))
        }
    }
}

/// `signature.timestamp` comes as a string or a number.
fn signature_part(signature: &Value, field: &str) -> Result<String, RelayError> {
    match &signature[field] {
        Value::String(text) if !text.is_empty() => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        _ => Err(RelayError::unauthorized(format!(
            "`signature.{field}` is missing"
        ))),
    }
}

fn read_event(event: &Value) -> Result<RelayEvent, RelayError> {
    let name = required(&event["event"], "event-data.event")?;
    let severity = event["severity"].as_str().unwrap_or_default();
    let kind = match name {
        "delivered" => EventKind::Delivered,
        "failed" if severity == "permanent" => EventKind::HardBounce,
        "failed" => EventKind::SoftBounce,
        "complained" => EventKind::Complaint,
        _ => EventKind::Other,
    };
    let provider_kind = match name {
        "failed" => format!("failed/{severity}"),
        other => other.to_owned(),
    };
    let status = &event["delivery-status"];
    let reason = optional(&status["description"])
        .or_else(|| optional(&status["message"]))
        .or_else(|| optional(&event["reason"]));
    let message_id = optional(&event["message"]["headers"]["message-id"]);
    Ok(RelayEvent {
        provider_event_id: required(&event["id"], "event-data.id")?.to_owned(),
        kind,
        provider_kind,
        recipient: recipient(&event["recipient"], "event-data.recipient")?,
        provider_message_ids: message_id.iter().cloned().collect(),
        message_id,
        reason,
        occurred_at: unix_seconds(&event["timestamp"], "event-data.timestamp")?,
        detail: event.clone(),
        signature_token: None,
    })
}
