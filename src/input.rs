//! What every face checks the same way: the field at fault in what came from outside
//! (`Invalid`, a 400 in the API, a notice in the dashboard), and the times that query
//! parameters carry.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

/// A value from outside that cannot be taken, naming its field when one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub field: Option<String>,
    pub message: String,
}

impl Invalid {
    /// The field at fault, and why.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A request at fault as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }
}

/// Why a domain operation on outside input did not happen: the input was at fault, or
/// the database.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A query or form value as meant: trimmed, and `None` when blank.
pub fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// An RFC 3339 time, or a date (its midnight, UTC).
pub fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, Invalid> {
    parse_date_text(text.trim()).ok_or_else(|| {
        Invalid::field(
            field,
            format!("`{field}` must be a time such as 2026-01-31T00:00:00Z or a date such as 2026-01-31."),
        )
    })
}

/// One of `allowed`, or `Invalid` naming `field` and listing them.
pub fn one_of<T: Copy>(
    field: &str,
    text: &str,
    allowed: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, Invalid> {
    allowed
        .iter()
        .copied()
        .find(|value| name(*value) == text)
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|value| name(*value)).collect();
            Invalid::field(
                field,
                format!("`{field}` must be one of {}.", names.join(", ")),
            )
        })
}

/// A date written out: RFC 3339, or an ISO-style date with an optional time and
/// offset (UTC when none), in years 1 to 9999. Property values and the API's time
/// parameters are read this way.
pub fn parse_date_text(text: &str) -> Option<DateTime<Utc>> {
    parse_any_date_text(text).and_then(storable_time)
}

/// The time, if it lies in years 1 to 9999: what PostgreSQL stores (its range starts
/// in 4713 BC) and what people mean. Every time read from input passes through here.
pub fn storable_time(time: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (1..=9999).contains(&time.year()).then_some(time)
}

fn parse_any_date_text(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Some(date.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M%:z",
    ] {
        if let Ok(date) = DateTime::parse_from_str(text, format) {
            return Some(date.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(date) = NaiveDateTime::parse_from_str(text, format) {
            return Some(date.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|date| date.and_utc())
}
