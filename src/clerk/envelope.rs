//! The Clerk event envelope (`{"object": "event", "type", "timestamp", "data"}`) and the
//! typed `data` of the five events that change contacts.

use chrono::{DateTime, Utc};
use std::borrow::Cow;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::redact::redact;
use crate::contacts::MAX_EMAIL_CHARS;
use crate::contacts::properties::MAX_STRING_CHARS;
use crate::db::storable_json::{JsonProblem, check_storable};
use crate::input::storable_time;

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
    #[error("the body cannot be stored: {0}")]
    NotStorable(JsonProblem),
    #[error("the body is not a Clerk event: {0}")]
    NotAnEvent(String),
    #[error("the data of this {event_type} event is malformed: {reason}")]
    MalformedData { event_type: String, reason: String },
}

impl<'a> Envelope<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let body = std::str::from_utf8(body).map_err(|_| EnvelopeError::NotJson)?;
        check_storable(body).map_err(|problem| {
            if problem.not_json {
                EnvelopeError::NotJson
            } else {
                EnvelopeError::NotStorable(problem)
            }
        })?;
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
            Some(ms) => {
                Some(clerk_time(ms).ok_or_else(|| not_an_event("`timestamp` is out of range"))?)
            }
        };
        Ok(Self {
            event_type,
            timestamp,
            data,
            body,
        })
    }

    /// Parses `data` as `T` and checks its lengths, naming the event type in the error.
    pub fn data<T: DeserializeOwned + Checked>(&self) -> Result<T, EnvelopeError> {
        let malformed = |reason: String| EnvelopeError::MalformedData {
            event_type: self.event_type.to_string(),
            reason,
        };
        parse_checked(self.data.get()).map_err(malformed)
    }

    /// The JSON to keep in the raw event log: the body with secrets removed.
    pub fn payload_to_store(&self) -> Result<Cow<'a, str>, EnvelopeError> {
        redact(&self.event_type, self.body).map_err(|e| EnvelopeError::NotAnEvent(e.to_string()))
    }
}

/// Parses `json` as `T` and checks its lengths: the `data` of an event, or an object
/// Clerk's Backend API answered.
pub fn parse_checked<T: DeserializeOwned + Checked>(json: &str) -> Result<T, String> {
    let data: T = serde_json::from_str(json).map_err(|e| e.to_string())?;
    data.check()?;
    Ok(data)
}

/// The longest identifier taken (Clerk's are about 30 characters).
pub(crate) const MAX_ID_CHARS: usize = 255;

/// Typed `data` whose fields are checked for length before they reach a column or an
/// index.
pub trait Checked {
    fn check(&self) -> Result<(), String>;
}

pub(crate) fn at_most(field: &str, value: Option<&str>, max: usize) -> Result<(), String> {
    match value {
        Some(value) if value.chars().count() > max => {
            Err(format!("`data.{field}` is longer than {max} characters"))
        }
        _ => Ok(()),
    }
}

impl Checked for UserData {
    fn check(&self) -> Result<(), String> {
        at_most("id", Some(&self.id), MAX_ID_CHARS)?;
        at_most("first_name", self.first_name.as_deref(), MAX_STRING_CHARS)?;
        at_most("last_name", self.last_name.as_deref(), MAX_STRING_CHARS)?;
        at_most(
            "primary_email_address_id",
            self.primary_email_address_id.as_deref(),
            MAX_ID_CHARS,
        )?;
        for (i, address) in self.email_addresses.iter().enumerate() {
            at_most(
                &format!("email_addresses[{i}].id"),
                Some(&address.id),
                MAX_ID_CHARS,
            )?;
            at_most(
                &format!("email_addresses[{i}].email_address"),
                Some(&address.email_address),
                MAX_EMAIL_CHARS,
            )?;
        }
        Ok(())
    }
}

impl Checked for DeletedUserData {
    fn check(&self) -> Result<(), String> {
        at_most("id", Some(&self.id), MAX_ID_CHARS)
    }
}

impl Checked for WaitlistEntryData {
    fn check(&self) -> Result<(), String> {
        at_most("id", Some(&self.id), MAX_ID_CHARS)?;
        at_most("email_address", Some(&self.email_address), MAX_EMAIL_CHARS)?;
        at_most("status", Some(&self.status), MAX_ID_CHARS)
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
    pub banned: Option<bool>,
    pub locked: Option<bool>,
    /// How long a lockout has to run, as of `updated_at`; null while locked for good.
    pub lockout_expires_in_seconds: Option<i64>,
    #[serde(default, deserialize_with = "millis")]
    pub last_sign_in_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub public_metadata: serde_json::Value,
    #[serde(default)]
    pub private_metadata: serde_json::Value,
    #[serde(default)]
    pub unsafe_metadata: serde_json::Value,
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
pub(crate) fn millis<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<i64>::deserialize(d)? {
        None => Ok(None),
        Some(ms) => clerk_time(ms)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("time out of range")),
    }
}

/// A Clerk time (milliseconds since the epoch), if it is one PostgreSQL can store.
fn clerk_time(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).and_then(storable_time)
}
