//! The states of a job: the one list, which the SQL binds, the API filter checks and
//! the dashboard shows. The table's `check` constraint holds the same list (a test
//! compares them).

use crate::input::{Invalid, one_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its `run_at`.
    Scheduled,
    /// Claimed by a worker holding its lease.
    Running,
    Done,
    /// Out of attempts; `roster`'s replay puts it back.
    Dead,
}

impl JobState {
    pub const ALL: [Self; 4] = [Self::Scheduled, Self::Running, Self::Done, Self::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }

    /// The state `text` names, or `Invalid` naming `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, Invalid> {
        one_of(field, text, &Self::ALL, Self::as_str)
    }
}
