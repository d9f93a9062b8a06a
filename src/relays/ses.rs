//! Amazon SES notifications, delivered by an SNS topic: both the identity notifications
//! (`notificationType`) and configuration-set event publishing (`eventType`). A
//! bounce, complaint or delivery names several recipients: one event each.

use serde_json::Value;

use super::sns::{SnsMessage, SnsType, SnsVerifier};
use super::{EventKind, RelayError, RelayEvent, Verified, optional, recipient, required, rfc3339};
use crate::config::relays::SesSettings;

pub struct Ses {
    sns: SnsVerifier,
}

impl Ses {
    pub fn new(settings: &SesSettings) -> Result<Self, String> {
        let certificate = settings
            .certificate
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|e| {
                    format!(
                        "relays.ses.certificate: cannot read {}: {e}",
                        path.display()
                    )
                })
            })
            .transpose()?;
        let sns = SnsVerifier::new(settings.topics.clone(), certificate.as_deref())
            .map_err(|e| format!("relays.ses.certificate: {e}"))?;
        Ok(Self { sns })
    }

    pub async fn read(&self, body: &[u8]) -> Result<Verified, RelayError> {
        let envelope = super::json_body(body)?;
        let message = self.sns.verify(&envelope).await?;
        match message.kind {
            SnsType::Notification => events(&message).map(Verified::Events),
            SnsType::SubscriptionConfirmation => {
                self.sns.confirm(&message).await?;
                Ok(Verified::Subscription {
                    topic: message.topic_arn,
                    confirmed: true,
                })
            }
            SnsType::UnsubscribeConfirmation => Ok(Verified::Subscription {
                topic: message.topic_arn,
                confirmed: false,
            }),
        }
    }
}

/// The SES notification inside a verified SNS message.
fn events(message: &SnsMessage) -> Result<Vec<RelayEvent>, RelayError> {
    super::json_body(message.message.as_bytes())
        .map_err(|e| RelayError::malformed(format!("`Message`: {e}")))
        .and_then(|notification| notification_events(&message.message_id, &notification))
}

fn notification_events(
    sns_message_id: &str,
    notification: &Value,
) -> Result<Vec<RelayEvent>, RelayError> {
    let kind_field = if notification["notificationType"].is_string() {
        "notificationType"
    } else {
        "eventType"
    };
    let ses_kind = required(&notification[kind_field], kind_field)?;
    let mail = &notification["mail"];
    let ses_message_id = required(&mail["messageId"], "mail.messageId")?;
    let header_message_id = optional(&mail["commonHeaders"]["messageId"]);
    let event = |kind, provider_kind: String, to: String, at, reason| RelayEvent {
        provider_event_id: format!("{sns_message_id}/{to}"),
        kind,
        provider_kind,
        recipient: to,
        message_id: header_message_id.clone(),
        provider_message_ids: vec![ses_message_id.to_owned()],
        reason,
        occurred_at: at,
        detail: notification.clone(),
        signature_token: None,
    };
    let mut events = Vec::new();
    match ses_kind {
        "Bounce" => {
            let bounce = &notification["bounce"];
            let bounce_type = required(&bounce["bounceType"], "bounce.bounceType")?;
            // Undetermined: SES could not tell; taken as temporary, so only repeats suppress.
            let kind = match bounce_type {
                "Permanent" => EventKind::HardBounce,
                _ => EventKind::SoftBounce,
            };
            let at = rfc3339(&bounce["timestamp"], "bounce.timestamp")?;
            let subtype = optional(&bounce["bounceSubType"]).unwrap_or_default();
            for (index, bounced) in array(&bounce["bouncedRecipients"], "bounce.bouncedRecipients")?
                .iter()
                .enumerate()
            {
                let field = format!("bounce.bouncedRecipients[{index}].emailAddress");
                let to = recipient(&bounced["emailAddress"], &field)?;
                let reason = optional(&bounced["diagnosticCode"])
                    .or_else(|| Some(format!("{bounce_type} bounce: {subtype}")));
                events.push(event(kind, format!("Bounce/{bounce_type}"), to, at, reason));
            }
        }
        "Complaint" => {
            let complaint = &notification["complaint"];
            let at = rfc3339(&complaint["timestamp"], "complaint.timestamp")?;
            let reason = optional(&complaint["complaintFeedbackType"]);
            for (index, complained) in array(
                &complaint["complainedRecipients"],
                "complaint.complainedRecipients",
            )?
            .iter()
            .enumerate()
            {
                let field = format!("complaint.complainedRecipients[{index}].emailAddress");
                let to = recipient(&complained["emailAddress"], &field)?;
                events.push(event(
                    EventKind::Complaint,
                    "Complaint".into(),
                    to,
                    at,
                    reason.clone(),
                ));
            }
        }
        "Delivery" => {
            let delivery = &notification["delivery"];
            let at = rfc3339(&delivery["timestamp"], "delivery.timestamp")?;
            let reason = optional(&delivery["smtpResponse"]);
            for (index, to) in array(&delivery["recipients"], "delivery.recipients")?
                .iter()
                .enumerate()
            {
                let to = recipient(to, &format!("delivery.recipients[{index}]"))?;
                events.push(event(
                    EventKind::Delivered,
                    "Delivery".into(),
                    to,
                    at,
                    reason.clone(),
                ));
            }
        }
        other => {
            let at = rfc3339(&mail["timestamp"], "mail.timestamp")?;
            for (index, to) in array(&mail["destination"], "mail.destination")?
                .iter()
                .enumerate()
            {
                let to = recipient(to, &format!("mail.destination[{index}]"))?;
                events.push(event(EventKind::Other, other.to_owned(), to, at, None));
            }
        }
    }
    Ok(events)
}

fn array<'a>(value: &'a Value, field: &str) -> Result<&'a Vec<Value>, RelayError> {
    value
        .as_array()
        .filter(|items| !items.is_empty())
        .ok_or_else(|| RelayError::malformed(format!("`{field}` is missing or empty")))
}
