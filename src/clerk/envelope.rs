//! The Clerk event envelope (`{"object": "event", "type", "timestamp", "data"}`) and the
//! typed `data` of the five events that change contacts.

use chrono::{DateTime, Utc};
use std::borrow::Cow;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::redact::redact;

/// A verified delivery whose body is a Clerk event. It borrows the body: `data` is
/// parsed only into the typed struct an event needs, and the body is stored as it came
/// unless it has secrets to remove.
#[derive(Debug)]
pub struct Envelope<'a> {
    pub event_type: Cow<'a, str>,
    /// Envelope `timestamp` (milliseconds); absent in some older payloads.
    pub timestamp: Option<DateTime<Utc>>,
    data: &'a RawValue,
    body: &'a str,
}

/// The envelope's fields, all optional so that what is missing gets its own message.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    event_type: Option<Cow<'a, str>>,
    timestamp: Option<i64>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// What the body lacks to be a Clerk event envelope, said to the sender.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the body is not valid JSON")]
    NotJson,
    #[error("the body is not a Clerk event: {0}")]
    NotAnEvent(String),
    #[error("the data of this {event_type} event is malformed: {reason}")]
    MalformedData { event_type: String, reason: String },
}

impl<'a> Envelope<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let body = std::str::from_utf8(body).map_err(|_| EnvelopeError::NotJson)?;
        let raw: RawEnvelope<'a> = serde_json::from_str(body).map_err(|e| match e.classify() {
            Category::Data => EnvelopeError::NotAnEvent(e.to_string()),
            _ => EnvelopeError::NotJson,
        })?;
        let not_an_event = |reason: &str| EnvelopeError::NotAnEvent(reason.to_owned());
        if raw.object.as_deref().is_some_and(|o| o != "event") {
            return Err(not_an_event("`object` is not \"event\""));
        }
        let event_type = raw
            .event_type
            .filter(|t| !t.is_empty())
            .ok_or_else(|| not_an_event("`type` is missing"))?;
        let data = raw
            .data
            .filter(|d| d.get().starts_with('{'))
            .ok_or_else(|| not_an_event("`data` is not an object"))?;
        let timestamp = match raw.timestamp {
            None => None,
            Some(ms) => Some(
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| not_an_event("`timestamp` is out of range"))?,
            ),
        };
        Ok(Self {
            event_type,
            timestamp,
            data,
            body,
        })
    }

    /// Parses `data` as `T`, naming the event type in the error.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, EnvelopeError> {
        serde_json::from_str(self.data.get()).map_err(|e| EnvelopeError::MalformedData {
            event_type: self.event_type.to_string(),
            reason: e.to_string(),
        })
    }

    /// The JSON to keep in the raw event log: the body with secrets removed.
    pub fn payload_to_store(&self) -> Result<Cow<'a, str>, EnvelopeError> {
        redact(&self.event_type, self.body).map_err(|e| EnvelopeError::NotAnEvent(e.to_string()))
    }
}

/// `data` of `user.created` and `user.updated`.
#[derive(Debug, Deserialize)]
pub struct UserData {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub primary_email_address_id: Option<String>,
    #[serde(default)]
    pub email_addresses: Vec<EmailAddress>,
    #[serde(default, deserialize_with = "millis")]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
pub struct EmailAddress {
    pub id: String,
    pub email_address: String,
}

impl UserData {
    /// The entry of `email_addresses` whose `id` is `primary_email_address_id`.
    pub fn primary_email(&self) -> Option<&str> {
        let primary_id = self.primary_email_address_id.as_deref()?;
        self.email_addresses
            .iter()
            .find(|address| address.id == primary_id)
            .map(|address| address.email_address.trim())
            .filter(|email| !email.is_empty())
    }
}

/// `data` of `user.deleted`.
#[derive(Debug, Deserialize)]
pub struct DeletedUserData {
    pub id: String,
}

/// `data` of `waitlistEntry.created` and `waitlistEntry.updated`.
#[derive(Debug, Deserialize)]
pub struct WaitlistEntryData {
    pub id: String,
    pub email_address: String,
    pub status: String,
    #[serde(default, deserialize_with = "millis")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "millis")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Clerk's times are integers of milliseconds since the epoch.
fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<i64>::deserialize(d)? {
        None => Ok(None),
        Some(ms) => DateTime::from_timestamp_millis(ms)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("time out of range")),
    }
}
