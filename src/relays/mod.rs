//! Relays (Amazon SES, Postmark, SendGrid, Resend, Mailgun) accept email with a 250 and
//! report later, by webhook, whether it was delivered, bounced or marked as spam. Each
//! provider's post is verified as the provider documents and read into `RelayEvent`s;
//! `record` matches them to deliveries and applies their effects.

pub mod deliverability;
pub mod log;
mod mailgun;
mod postmark;
pub mod record;
mod resend;
mod sendgrid;
mod ses;
mod sns;
pub mod webhook;

use actix_web::http::header::HeaderMap;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::relays::RelaySettings;

/// A relay Roster takes webhooks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Ses,
    Postmark,
    Sendgrid,
    Resend,
    Mailgun,
}

impl Provider {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ses" => Self::Ses,
            "postmark" => Self::Postmark,
            "sendgrid" => Self::Sendgrid,
            "resend" => Self::Resend,
            "mailgun" => Self::Mailgun,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ses => "ses",
            Self::Postmark => "postmark",
            Self::Sendgrid => "sendgrid",
            Self::Resend => "resend",
            Self::Mailgun => "mailgun",
        }
    }
}

/// What an event means for Roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The recipient's server accepted the email.
    Delivered,
    /// The address will never take mail: suppressed.
    HardBounce,
    /// A temporary refusal (mailbox full, greylisted): counted, and repeated ones suppress.
    SoftBounce,
    /// The recipient marked the email as spam: unsubscribed and suppressed.
    Complaint,
    /// Anything else the relay reports (opens, clicks, deferrals, ...): kept, no effect.
    Other,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::HardBounce => "hard_bounce",
            Self::SoftBounce => "soft_bounce",
            Self::Complaint => "complaint",
            Self::Other => "other",
        }
    }
}

/// One event a relay reported, about one recipient of one message.
#[derive(Debug, Clone)]
pub struct RelayEvent {
    /// The relay's id of the event: a repeat of it changes nothing.
    pub provider_event_id: String,
    pub kind: EventKind,
    /// The relay's own name for the event (`Bounce/Permanent`, `bounce`, ...).
    pub provider_kind: String,
    /// Lowercased.
    pub recipient: String,
    /// The Message-ID header as the relay saw it, with or without angle brackets.
    pub message_id: Option<String>,
    /// The relay's own ids for the message, as its SMTP answer gave one of them.
    pub provider_message_ids: Vec<String>,
    /// Why, as the relay says: a bounce's diagnostic, a complaint's feedback type.
    pub reason: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// The relay's event as posted.
    pub detail: Value,
    /// A signature's single-use token that may carry only this event (Mailgun signs
    /// its timestamp and token, not the event).
    pub signature_token: Option<String>,
}

/// Why a post was refused, as told to the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Malformed(String),
    /// The SNS signing certificate could not be fetched, or a subscription could not
    /// be confirmed: worth the relay's retry.
    #[error("{0}; retry later")]
    Unavailable(String),
}

impl RelayError {
    fn malformed(message: impl Into<String>) -> Self {
        Self::Malformed(message.into())
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(message.into())
    }
}

/// A verified post: events to record, or an SNS subscription confirmed.
#[derive(Debug)]
pub enum Verified {
    Events(Vec<RelayEvent>),
    /// An SNS `SubscriptionConfirmation` (confirmed by visiting its `SubscribeURL`) or
    /// `UnsubscribeConfirmation` (nothing to do): the topic it was for.
    Subscription {
        topic: String,
        confirmed: bool,
    },
}

/// The verifiers of the configured relays, built once at start.
pub struct Relays {
    ses: Option<ses::Ses>,
    postmark: Option<postmark::Postmark>,
    sendgrid: Option<sendgrid::Sendgrid>,
    resend: Option<resend::Resend>,
    mailgun: Option<mailgun::Mailgun>,
}

impl Relays {
    /// Reads the keys and the local certificate; every problem is named.
    pub fn new(settings: &RelaySettings) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let relays = Self {
            ses: built(settings.ses.as_ref().map(ses::Ses::new), &mut problems),
            postmark: settings.postmark.as_ref().map(postmark::Postmark::new),
            sendgrid: built(
                settings.sendgrid.as_ref().map(sendgrid::Sendgrid::new),
                &mut problems,
            ),
            resend: settings.resend.as_ref().map(resend::Resend::new),
            mailgun: settings.mailgun.as_ref().map(mailgun::Mailgun::new),
        };
        if problems.is_empty() {
            Ok(relays)
        } else {
            Err(problems)
        }
    }

    pub fn is_configured(&self, provider: Provider) -> bool {
        match provider {
            Provider::Ses => self.ses.is_some(),
            Provider::Postmark => self.postmark.is_some(),
            Provider::Sendgrid => self.sendgrid.is_some(),
            Provider::Resend => self.resend.is_some(),
            Provider::Mailgun => self.mailgun.is_some(),
        }
    }

    /// Verifies a post from `provider` (which must be configured) and reads its events.
    pub async fn read(
        &self,
        provider: Provider,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, RelayError> {
        let unconfigured = || RelayError::unauthorized("this relay is not configured");
        match provider {
            Provider::Ses => self.ses.as_ref().ok_or_else(unconfigured)?.read(body).await,
            Provider::Postmark => {
                let postmark = self.postmark.as_ref().ok_or_else(unconfigured)?;
                postmark.read(headers, body).map(Verified::Events)
            }
            Provider::Sendgrid => {
                let sendgrid = self.sendgrid.as_ref().ok_or_else(unconfigured)?;
                sendgrid.read(headers, body).map(Verified::Events)
            }
            Provider::Resend => {
                let resend = self.resend.as_ref().ok_or_else(unconfigured)?;
                resend.read(headers, body).map(Verified::Events)
            }
            Provider::Mailgun => {
                let mailgun = self.mailgun.as_ref().ok_or_else(unconfigured)?;
                mailgun.read(body).map(Verified::Events)
            }
        }
    }
}

/// A verifier, or its problem pushed onto `problems`.
fn built<T>(verifier: Option<Result<T, String>>, problems: &mut Vec<String>) -> Option<T> {
    match verifier? {
        Ok(verifier) => Some(verifier),
        Err(problem) => {
            problems.push(problem);
            None
        }
    }
}

/// The body as JSON that PostgreSQL can store, or a 400 saying where it is not.
fn json_body(body: &[u8]) -> Result<Value, RelayError> {
    let text =
        std::str::from_utf8(body).map_err(|_| RelayError::malformed("the body is not UTF-8"))?;
    crate::db::storable_json::check_storable(text)
        .map_err(|problem| RelayError::malformed(format!("the body: {problem}")))?;
    serde_json::from_str(text).map_err(|e| RelayError::malformed(format!("the body: {e}")))
}

/// A string field the event cannot do without.
fn required<'a>(value: &'a Value, field: &str) -> Result<&'a str, RelayError> {
    value
        .as_str()
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| RelayError::malformed(format!("`{field}` is missing or not a string")))
}

/// An optional string field; blank counts as absent.
fn optional(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// The recipient's address, lowercased: no control characters, an `@`, at most 254
/// characters, as an address must be.
fn recipient(value: &Value, field: &str) -> Result<String, RelayError> {
    let address = required(value, field)?.trim();
    let plausible = address.len() <= 254
        && address.contains('@')
        && !address.chars().any(|c| c.is_control() || c.is_whitespace());
    if !plausible {
        return Err(RelayError::malformed(format!(
            "`{field}` is not an email address"
        )));
    }
    Ok(address.to_lowercase())
}

/// An RFC 3339 time within years 1 to 9999 (what PostgreSQL stores).
fn rfc3339(value: &Value, field: &str) -> Result<DateTime<Utc>, RelayError> {
    let text = required(value, field)?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
        .and_then(crate::input::storable_time)
        .ok_or_else(|| RelayError::malformed(format!("`{field}` is not an RFC 3339 time")))
}

/// A Unix time in seconds, possibly fractional, as a number or a string.
fn unix_seconds(value: &Value, field: &str) -> Result<DateTime<Utc>, RelayError> {
    let seconds = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    seconds
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 253_402_300_800.0)
        .and_then(|s| DateTime::from_timestamp_micros((s * 1_000_000.0) as i64))
        .ok_or_else(|| RelayError::malformed(format!("`{field}` is not a Unix time")))
}

/// Headers are matched by name, case-insensitively; a value must be visible ASCII.
fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, RelayError> {
    headers
        .get(name)
        .ok_or_else(|| RelayError::unauthorized(format!("the {name} header is missing")))?
        .to_str()
        .map_err(|_| RelayError::unauthorized(format!("the {name} header is malformed")))
}
