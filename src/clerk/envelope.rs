//! The Clerk event envelope (`{"object": "event", "type", "timestamp", "data"}`) and the
//! typed `data` of the five events that change contacts.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A verified delivery whose body is a Clerk event. `payload` is the whole JSON body.
#[derive(Debug)]
pub struct Envelope {
    pub event_type: String,
    /// Envelope `timestamp` (milliseconds); absent in some older payloads.
    pub timestamp: Option<DateTime<Utc>>,
    pub payload: Value,
}

/// What the body lacks to be a Clerk event envelope, said to the sender.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the body is not valid JSON")]
    NotJson,
    #[error("the body is not a Clerk event: {0}")]
    NotAnEvent(&'static str),
    #[error("the data of this {event_type} event is malformed: {reason}")]
    MalformedData { event_type: String, reason: String },
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let payload: Value = serde_json::from_slice(body).map_err(|_| EnvelopeError::NotJson)?;
        let object = payload
            .as_object()
            .ok_or(EnvelopeError::NotAnEvent("it is not a JSON object"))?;
        if object.get("object").is_some_and(|o| o != "event") {
            return Err(EnvelopeError::NotAnEvent("`object` is not \"event\""));
        }
        let event_type = object
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or(EnvelopeError::NotAnEvent("`type` is missing"))?
            .to_owned();
        if !object.get("data").is_some_and(Value::is_object) {
            return Err(EnvelopeError::NotAnEvent("`data` is not an object"));
        }
        let timestamp = match object.get("timestamp") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .as_i64()
                    .and_then(DateTime::from_timestamp_millis)
                    .ok_or(EnvelopeError::NotAnEvent(
                        "`timestamp` is not a time in milliseconds",
                    ))?,
            ),
        };
        Ok(Self {
            event_type,
            timestamp,
            payload,
        })
    }

    /// Parses `data` as `T`, naming the event type in the error.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, EnvelopeError> {
        T::deserialize(&self.payload["data"]).map_err(|e| EnvelopeError::MalformedData {
            event_type: self.event_type.clone(),
            reason: e.to_string(),
        })
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
