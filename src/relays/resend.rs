//! Resend's webhooks, signed by Svix (`svix-id`, `svix-timestamp`, `svix-signature`)
//! and checked with the verifier the Clerk webhook uses. One event per post; the
//! `svix-id` is its id.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::{EventKind, RelayError, RelayEvent, optional, recipient, required, rfc3339};
use crate::clerk::signature::SignatureVerifier;
use crate::config::relays::ResendSettings;

pub struct Resend {
    verifier: SignatureVerifier,
}

impl Resend {
    /// The secret was checked with the settings.
    pub fn new(settings: &ResendSettings) -> Self {
        Self {
            verifier: SignatureVerifier::new(std::slice::from_ref(&settings.secret)),
        }
    }

    pub fn read(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<RelayEvent>, RelayError> {
        let svix_id = self
            .verifier
            .verify(headers, body)
            .map_err(|e| RelayError::unauthorized(e.to_string()))?;
        let event = super::json_body(body)?;
        read_events(&svix_id, &event)
    }
}

fn read_events(svix_id: &str, event: &Value) -> Result<Vec<RelayEvent>, RelayError> {
    let name = required(&event["type"], "type")?;
    let data = &event["data"];
    let bounce_type = data["bounce"]["type"].as_str().unwrap_or_default();
    let kind = match name {
        "email.delivered" => EventKind::Delivered,
        // Resend's bounce types: `Permanent`, `Transient`, `Undetermined` (as SES's).
        "email.bounced" if bounce_type == "Permanent" => EventKind::HardBounce,
        "email.bounced" => EventKind::SoftBounce,
        "email.complained" => EventKind::Complaint,
        _ => EventKind::Other,
    };
    let provider_kind = match name {
        "email.bounced" => format!("email.bounced/{bounce_type}"),
        other => other.to_owned(),
    };
    let email_id = required(&data["email_id"], "data.email_id")?;
    let at = rfc3339(&event["created_at"], "created_at")?;
    let reason = optional(&data["bounce"]["message"]);
    // `to` is a list; one event per address, each idempotent on its own.
    let to = match &data["to"] {
        Value::Array(addresses) if !addresses.is_empty() => addresses.clone(),
        Value::String(_) => vec![data["to"].clone()],
        _ => return Err(RelayError::malformed("`data.to` is missing or empty")),
    };
    to.iter()
        .enumerate()
        .map(|(index, address)| {
            let recipient = recipient(address, &format!("data.to[{index}]"))?;
            Ok(RelayEvent {
                provider_event_id: format!("{svix_id}/{recipient}"),
                kind,
                provider_kind: provider_kind.clone(),
                recipient,
                message_id: None,
                provider_message_ids: vec![email_id.to_owned()],
                reason: reason.clone(),
                occurred_at: at,
                detail: event.clone(),
                signature_token: None,
            })
        })
        .collect()
}
