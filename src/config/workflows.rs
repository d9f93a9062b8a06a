//! The `[[workflows]]` tables of the config file as written; `workflows::definition`
//! checks them and turns them into workflows.

use serde::{Deserialize, Serialize};

/// One `[[workflows]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    pub name: String,
    /// The event that starts a run: a Clerk event type, an API event name, or a
    /// lifecycle event (`contact.created`, `contact.graduated`, `contact.unsubscribed`).
    pub trigger: String,
    #[serde(default)]
    pub entry: EntryRule,
    /// Sent even to unsubscribed contacts, without unsubscribe headers (account email).
    #[serde(default)]
    pub transactional: bool,
    /// Whether opens and clicks are tracked; default: marketing email yes,
    /// transactional no.
    #[serde(default)]
    pub track: Option<bool>,
    /// An expression over `contact` and `event`, checked before every step; the run
    /// ends as soon as it holds.
    pub exit_when: Option<String>,
    pub steps: Vec<StepConfig>,
}

impl WorkflowConfig {
    /// Whether a step sends email.
    pub fn sends(&self) -> bool {
        self.steps
            .iter()
            .any(|step| matches!(step, StepConfig::Send { .. }))
    }
}

/// Whether a contact can be in a workflow more than once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryRule {
    #[default]
    Once,
    EveryTime,
}

/// A step as written: `{ send = "welcome" }`, `{ wait = "2d" }` or `{ if = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum StepConfig {
    Send {
        send: String,
    },
    Wait {
        wait: String,
    },
    If {
        #[serde(rename = "if")]
        condition: String,
    },
}
