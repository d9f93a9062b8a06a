//! SendGrid's Signed Event Webhook: an ECDSA (P-256, SHA-256) signature, base64 DER in
//! `X-Twilio-Email-Event-Webhook-Signature`, over the `X-Twilio-Email-Event-Webhook-Timestamp`
//! header followed by the raw body, checked with the public key from SendGrid's Mail
//! Settings. A post is a batch: a JSON array of events.

use actix_web::http::header::HeaderMap;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::{
    EventKind, RelayError, RelayEvent, header, optional, recipient, required, unix_seconds,
};
use crate::config::relays::SendgridSettings;

const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

pub struct Sendgrid {
    key: ParsedPublicKey,
}

impl Sendgrid {
    pub fn new(settings: &SendgridSettings) -> Result<Self, String> {
        let problem = || {
            "relays.sendgrid.public_key: not the base64 ECDSA public key SendGrid shows \
             under Mail Settings, Signed Event Webhook"
                .to_owned()
        };
        let der = STANDARD
            .decode(settings.public_key.trim())
            .map_err(|_| problem())?;
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).map_err(|_| problem())?;
        Ok(Self { key })
    }

    pub fn read(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<RelayEvent>, RelayError> {
        let signature = STANDARD
            .decode(header(headers, SIGNATURE_HEADER)?.trim())
            .map_err(|_| {
                RelayError::unauthorized(format!("the {SIGNATURE_HEADER} header is not base64"))
            })?;
        let timestamp = header(headers, TIMESTAMP_HEADER)?;
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        if self.key.verify_sig(&signed, &signature).is_err() {
            return Err(RelayError::unauthorized(
                "the signature does not match the body with the configured public key",
            ));
        }
        let batch = super::json_body(body)?;
        let events = batch
            .as_array()
            .ok_or_else(|| RelayError::malformed("the body is not a JSON array of events"))?;
        events
            .iter()
            .enumerate()
            .map(|(index, event)| read_event(index, event))
            .collect()
    }
}

fn read_event(index: usize, event: &Value) -> Result<RelayEvent, RelayError> {
    let field = |name: &str| format!("[{index}].{name}");
    let name = required(&event["event"], &field("event"))?;
    let bounce_type = event["type"].as_str().unwrap_or("bounce");
    let kind = match name {
        "delivered" => EventKind::Delivered,
        // SendGrid's `blocked` bounces are temporary refusals; `bounce` ones are not.
        "bounce" if bounce_type == "blocked" => EventKind::SoftBounce,
        "bounce" => EventKind::HardBounce,
        "spamreport" => EventKind::Complaint,
        _ => EventKind::Other,
    };
    let provider_kind = match name {
        "bounce" => format!("bounce/{bounce_type}"),
        other => other.to_owned(),
    };
    // `sg_message_id` is the id SendGrid answered with, followed by `.filter...`.
    let sg_message_id = optional(&event["sg_message_id"]);
    let mut provider_message_ids = Vec::new();
    if let Some(id) = &sg_message_id {
        if let Some((queued, _)) = id.split_once(".filter") {
            provider_message_ids.push(queued.to_owned());
        }
        provider_message_ids.push(id.clone());
    }
    Ok(RelayEvent {
        provider_event_id: required(&event["sg_event_id"], &field("sg_event_id"))?.to_owned(),
        kind,
        provider_kind,
        recipient: recipient(&event["email"], &field("email"))?,
        message_id: optional(&event["smtp-id"]),
        provider_message_ids,
        reason: optional(&event["reason"]).or_else(|| optional(&event["response"])),
        occurred_at: unix_seconds(&event["timestamp"], &field("timestamp"))?,
        detail: event.clone(),
        signature_token: None,
    })
}
