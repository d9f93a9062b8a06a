//! The lifecycle events Roster emits about a contact, which workflows can trigger on,
//! and the one `event` shape their runs see, whatever caused them.

use serde_json::{Value, json};

/// A moment in a contact's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    Created,
    Graduated,
    Unsubscribed,
}

impl LifecycleEvent {
    pub const ALL: [Self; 3] = [Self::Created, Self::Graduated, Self::Unsubscribed];

    /// The trigger name: `contact.created`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "contact.created",
            Self::Graduated => "contact.graduated",
            Self::Unsubscribed => "contact.unsubscribed",
        }
    }

    /// The event of a name, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.name() == name)
    }
}

/// What made a lifecycle event happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A Clerk webhook (or a replay of one).
    Clerk,
    Api,
    /// The unsubscribe link of an email.
    Link,
    Dashboard,
    /// A spam complaint a relay reported.
    Complaint,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clerk => "clerk",
            Self::Api => "api",
            Self::Link => "link",
            Self::Dashboard => "dashboard",
            Self::Complaint => "complaint",
        }
    }
}

/// What a run of a lifecycle trigger sees as `event`:
/// `{"type": "contact.unsubscribed", "data": {"via": "clerk", "cause": {…}}}`, where
/// `cause` is the Clerk event that caused it as delivered (redacted), and null for the
/// API, a link or the dashboard.
pub fn event_json(event: LifecycleEvent, via: Via, cause: Option<&Value>) -> Value {
    json!({ "type": event.name(), "data": { "via": via.as_str(), "cause": cause } })
}
