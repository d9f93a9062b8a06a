//! Postmark's webhooks, guarded by HTTP basic auth (the credentials put in the webhook
//! URL, `https://user:password@host/webhooks/email/postmark`). One record per post:
//! `Bounce`, `SpamComplaint` or `Delivery` (others are kept with no effect).

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web_httpauth::headers::authorization::{Basic, Scheme};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::{EventKind, RelayError, RelayEvent, optional, recipient, required, rfc3339};
use crate::config::relays::PostmarkSettings;

pub struct Postmark {
    username: String,
    password: SecretString,
}

/// Bounce types that mean the address will never work; Postmark also marks any
/// bounce after which it deactivated the address `Inactive`.
const HARD_BOUNCE_TYPES: [&str; 3] = ["HardBounce", "BadEmailAddress", "ManuallyDeactivated"];
/// Temporary trouble: counted, and repeats suppress.
const SOFT_BOUNCE_TYPES: [&str; 5] = [
    "SoftBounce",
    "Transient",
    "DnsError",
    "MailFrontier",
    "Blocked",
];

impl Postmark {
    pub fn new(settings: &PostmarkSettings) -> Self {
        Self {
            username: settings.username.clone(),
            password: settings.password.clone(),
        }
    }

    pub fn read(&self, headers: &HeaderMap, body: &[u8]) -> Result<Vec<RelayEvent>, RelayError> {
        self.authenticate(headers)?;
        let record = super::json_body(body)?;
        Ok(vec![event(&record)?])
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<(), RelayError> {
        let value = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| RelayError::unauthorized("HTTP basic auth is missing"))?;
        let basic = Basic::parse(value)
            .map_err(|_| RelayError::unauthorized("the Authorization header is not basic auth"))?;
        let user_matches = basic.user_id().as_bytes().ct_eq(self.username.as_bytes());
        let password = basic.password().unwrap_or_default();
        let password_matches = password
            .as_bytes()
            .ct_eq(self.password.expose_secret().as_bytes());
        if bool::from(user_matches & password_matches) {
            Ok(())
        } else {
            Err(RelayError::unauthorized("wrong username or password"))
        }
    }
}

fn event(record: &Value) -> Result<RelayEvent, RelayError> {
    let record_type = required(&record["RecordType"], "RecordType")?;
    let postmark_message_id = required(&record["MessageID"], "MessageID")?.to_owned();
    let (kind, provider_kind, to, at, event_id, reason) = match record_type {
        "Bounce" | "SpamComplaint" => {
            let bounce_type = required(&record["Type"], "Type")?;
            let kind = if record_type == "SpamComplaint" || bounce_type == "SpamComplaint" {
                EventKind::Complaint
            } else if HARD_BOUNCE_TYPES.contains(&bounce_type) || record["Inactive"] == true {
                EventKind::HardBounce
            } else if SOFT_BOUNCE_TYPES.contains(&bounce_type) {
                EventKind::SoftBounce
            } else {
                EventKind::Other
            };
            let id = match &record["ID"] {
                Value::Number(id) => id.to_string(),
                other => required(other, "ID")?.to_owned(),
            };
            let reason = optional(&record["Details"]).or_else(|| optional(&record["Description"]));
            (
                kind,
                format!("{record_type}/{bounce_type}"),
                recipient(&record["Email"], "Email")?,
                rfc3339(&record["BouncedAt"], "BouncedAt")?,
                format!("{record_type}/{id}"),
                reason,
            )
        }
        "Delivery" => {
            let to = recipient(&record["Recipient"], "Recipient")?;
            // A delivery has no id of its own: one per message and recipient.
            let id = format!("Delivery/{postmark_message_id}/{to}");
            (
                EventKind::Delivered,
                "Delivery".to_owned(),
                to,
                rfc3339(&record["DeliveredAt"], "DeliveredAt")?,
                id,
                optional(&record["Details"]),
            )
        }
        other => {
            let to = optional(&record["Recipient"])
                .map(Value::from)
                .unwrap_or_else(|| record["Email"].clone());
            let to = recipient(&to, "Recipient")?;
            let at = ["ReceivedAt", "DeliveredAt", "BouncedAt", "ChangedAt"]
                .iter()
                .find_map(|field| rfc3339(&record[*field], field).ok())
                .unwrap_or_else(chrono::Utc::now);
            let id = format!(
                "{other}/{postmark_message_id}/{to}/{}",
                at.timestamp_micros()
            );
            (EventKind::Other, other.to_owned(), to, at, id, None)
        }
    };
    Ok(RelayEvent {
        provider_event_id: event_id,
        kind,
        provider_kind,
        recipient: to,
        message_id: None,
        provider_message_ids: vec![postmark_message_id],
        reason,
        occurred_at: at,
        detail: record.clone(),
        signature_token: None,
    })
}
