//! What every face checks the same way: the field at fault in what came from outside
//! (`Invalid`, a 400 in the API, a notice in the dashboard), and the times that query
//! parameters carry.

use chrono::{DateTime, Utc};

use crate::contacts::properties::parse_date_text;

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
