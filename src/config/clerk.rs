//! Per-event Clerk settings, as on Loops' Clerk settings page: the `[clerk.*]` tables of
//! the config file. Every event is on by default, so an absent file means a working sync.

use serde::Deserialize;

/// The `[clerk]` table: one sub-table per Clerk event Roster syncs into contacts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClerkSettings {
    pub user_created: UserEventSettings,
    pub user_updated: UserEventSettings,
    pub user_deleted: UserDeletedSettings,
    pub waitlist_entry_created: WaitlistEventSettings,
    pub waitlist_entry_updated: WaitlistEventSettings,
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
