//! The states of a workflow run and of an email delivery: the one list of each, which
//! the SQL binds, the API filters check and the dashboard shows. The tables' `check`
//! constraints hold the same lists (a test compares them).

use crate::input::{Invalid, one_of};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Active,
    Completed,
    Exited,
}

impl RunState {
    pub const ALL: [Self; 3] = [Self::Active, Self::Completed, Self::Exited];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Exited => "exited",
        }
    }

    /// The state `text` names, or `Invalid` naming `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Invalid> {
        one_of(field, text, &Self::ALL, Self::as_str)
    }
}

/// Where the email of one (run, step) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Claimed, and being handed to SMTP.
    Sending,
    Sent,
    /// A transient failure; the step's job tries again.
    Retrying,
    /// Refused for good (a 5xx), or out of attempts.
    Failed,
    /// The worker stopped mid-send: it may or may not have gone out, and is never
    /// tried again.
    Unknown,
    /// Not sent: the address is suppressed.
    Suppressed,
}

impl DeliveryState {
    /// The most useful first.
    pub const ALL: [Self; 6] = [
        Self::Sent,
        Self::Failed,
        Self::Suppressed,
        Self::Retrying,
        Self::Sending,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::Suppressed => "suppressed",
        }
    }

    /// The state `text` names, or `Invalid` naming `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Invalid> {
        one_of(field, text, &Self::ALL, Self::as_str)
    }

    /// Whether the email did not reach the address (as the dashboard counts it).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Suppressed | Self::Unknown)
    }
}
