//! Per-event Clerk settings, as on Loops' Clerk settings page: the `[clerk.*]` tables of
//! the config file. Every event is on by default, so an absent file means a working sync.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::contacts::properties::{PropertyType, check_new_name};

/// The `[clerk]` table: one sub-table per Clerk event Roster syncs into contacts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClerkSettings {
    pub user_created: UserEventSettings,
    pub user_updated: UserEventSettings,
    pub user_deleted: UserDeletedSettings,
    pub waitlist_entry_created: WaitlistEventSettings,
    pub waitlist_entry_updated: WaitlistEventSettings,
    /// `[clerk.properties]`: custom properties copied from the user's metadata.
    pub properties: BTreeMap<String, MappedProperty>,
    /// `[clerk.reconcile]`: a reconcile with Clerk's Backend API inside `serve`.
    pub reconcile: Option<ReconcileSettings>,
}

/// The metadata a user's events carry, which `[clerk.properties]` may read.
const METADATA: [&str; 3] = ["public_metadata", "private_metadata", "unsafe_metadata"];

/// One `[clerk.properties]` entry: `plan = "public_metadata.plan"` (a string), or
/// `seats = { from = "public_metadata.seats", type = "number" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MappedProperty {
    Path(String),
    Typed {
        from: String,
        #[serde(rename = "type")]
        kind: String,
    },
}

impl MappedProperty {
    /// The metadata path, split at dots: `["public_metadata", "plan"]`.
    pub fn path(&self) -> Vec<&str> {
        match self {
            Self::Path(from) | Self::Typed { from, .. } => from.split('.').collect(),
        }
    }

    /// The property's type (`string` unless the entry says).
    pub fn kind(&self) -> Option<PropertyType> {
        match self {
            Self::Path(_) => Some(PropertyType::String),
            Self::Typed { kind, .. } => PropertyType::parse(kind),
        }
    }
}

/// `[clerk.reconcile]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSettings {
    /// How often: `12h`, `1d`, ...
    pub every: String,
    /// Repair the drift found, as `roster clerk reconcile --fix` does.
    #[serde(default)]
    pub fix: bool,
}

impl ReconcileSettings {
    pub fn interval(&self) -> Option<Duration> {
        crate::workflows::definition::parse_duration(&self.every)
            .filter(|every| *every >= Duration::from_secs(60))
    }
}

impl ClerkSettings {
    /// Every problem of the `[clerk.properties]` and `[clerk.reconcile]` tables.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, mapped) in &self.properties {
            let at = format!("[clerk.properties] {name}");
            if let Err(why) = check_new_name(name) {
                problems.push(format!("{at}: {why}"));
            }
            let path = mapped.path();
            if !METADATA.contains(&path[0]) || path.len() < 2 || path.iter().any(|p| p.is_empty()) {
                problems.push(format!(
                    "{at}: `from` must be a key path under one of {}, such as \"public_metadata.plan\"",
                    METADATA.join(", ")
                ));
            }
            if mapped.kind().is_none() {
                problems.push(format!(
                    "{at}: `type` must be one of string, number, boolean, date"
                ));
            }
        }
        if let Some(reconcile) = &self.reconcile
            && reconcile.interval().is_none()
        {
            problems.push(format!(
                "[clerk.reconcile] every: {:?} is not a duration of a minute or more such as \"12h\" or \"1d\"",
                reconcile.every
            ));
        }
        problems
    }
}

/// `[clerk.user_created]` and `[clerk.user_updated]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserEventSettings {
    pub enabled: bool,
    /// User group given to the contact; `None` leaves the group as it is.
    pub user_group: Option<String>,
    /// Copy Clerk's first and last name onto the contact.
    pub update_names: bool,
}

impl Default for UserEventSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            user_group: None,
            update_names: true,
        }
    }
}

/// `[clerk.user_deleted]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserDeletedSettings {
    pub enabled: bool,
    pub action: DeletedUserAction,
}

impl Default for UserDeletedSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            action: DeletedUserAction::Unsubscribe,
        }
    }
}

/// What a `user.deleted` does to the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletedUserAction {
    /// Keep the contact, unsubscribed: its history stays for analytics.
    Unsubscribe,
    /// Remove the contact row.
    Delete,
}

/// `[clerk.waitlist_entry_created]` and `[clerk.waitlist_entry_updated]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaitlistEventSettings {
    pub enabled: bool,
    /// User group given to a contact that is not a Clerk user yet.
    pub user_group: Option<String>,
}

impl Default for WaitlistEventSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            user_group: None,
        }
    }
}
