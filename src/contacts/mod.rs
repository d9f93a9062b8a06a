//! Contacts: the audience. The row type, the checks on contact input, the
//! create-or-update every face outside Clerk uses, search, and the lifecycle events a
//! contact's changes emit. Clerk's own writes are in `clerk::sync`.

pub mod input;
pub mod lifecycle;
pub mod properties;
pub mod search;
pub mod store;
pub mod write;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::input::Invalid;

/// The longest address taken: what SMTP carries (RFC 5321's 254 characters of a path).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Why a contact write was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    /// The input is at fault.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A create-only write whose email or userId is on a contact already.
    #[error("Email or userId is already on your audience.")]
    Taken,
    /// The contact looked up was gone when it was locked: a concurrent write won; the
    /// whole write can be retried.
    #[error("The contact changed while it was written; retry.")]
    Changed,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl ContactError {
    /// The field at fault, and why.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(Invalid::field(field, message))
    }

    /// The input at fault as a whole.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(Invalid::new(message))
    }
}

/// One contact as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Contact {
    pub id: Uuid,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub source: String,
    pub subscribed: bool,
    pub user_group: Option<String>,
    pub user_id: Option<String>,
    pub mailing_lists: serde_json::Value,
    pub properties: serde_json::Value,
    pub opt_in_status: Option<String>,
    pub clerk_updated_at: Option<DateTime<Utc>>,
    pub graduated_at: Option<DateTime<Utc>>,
    pub unsubscribed_at: Option<DateTime<Utc>>,
    pub waitlist_entry_id: Option<String>,
    pub waitlist_status: Option<String>,
    pub waitlist_joined_at: Option<DateTime<Utc>>,
    pub waitlist_updated_at: Option<DateTime<Utc>>,
    pub clerk_banned: bool,
    pub clerk_locked: bool,
    /// When the lockout ends; none while locked for good.
    pub clerk_locked_until: Option<DateTime<Utc>>,
    pub clerk_last_sign_in_at: Option<DateTime<Utc>>,
    /// `[{"id", "name", "slug", "role"}]`: the user's organizations.
    pub clerk_organizations: serde_json::Value,
    pub clerk_subscription_status: Option<String>,
    pub clerk_plan: Option<String>,
    pub clerk_trial_ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Contact {
    /// A contact not yet stored: subscribed, on no list, with no properties.
    pub fn new(email: &str, source: &str) -> Self {
        let now = chrono::Utc::now();
        Self {
            id: Uuid::now_v7(),
            email: email.to_owned(),
            first_name: None,
            last_name: None,
            source: source.to_owned(),
            subscribed: true,
            user_group: None,
            user_id: None,
            mailing_lists: json!({}),
            properties: json!({}),
            opt_in_status: None,
            clerk_updated_at: None,
            graduated_at: None,
            unsubscribed_at: None,
            waitlist_entry_id: None,
            waitlist_status: None,
            waitlist_joined_at: None,
            waitlist_updated_at: None,
            clerk_banned: false,
            clerk_locked: false,
            clerk_locked_until: None,
            clerk_last_sign_in_at: None,
            clerk_organizations: json!([]),
            clerk_subscription_status: None,
            clerk_plan: None,
            clerk_trial_ends_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The contact as Loops shows it (and templates see it): camelCase fields, custom
    /// properties at top level.
    pub fn to_json(&self) -> Value {
        let mut contact = json!({
            "id": self.id,
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "source": self.source,
            "subscribed": self.subscribed,
            "userGroup": self.user_group,
            "userId": self.user_id,
            "mailingLists": self.mailing_lists,
            "optInStatus": self.opt_in_status,
        });
        if let (Some(fields), Some(properties)) =
            (contact.as_object_mut(), self.properties.as_object())
        {
            for (name, value) in properties {
                fields.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
        contact
    }

    /// The Clerk facts (README, "Clerk facts"), as `contact.clerk` shows them.
    /// Whether Clerk keeps the user from signing in at `now`: locked, and the lockout
    /// (if it ends) not over.
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.clerk_locked && self.clerk_locked_until.is_none_or(|until| until > now)
    }

    pub fn clerk_json(&self) -> Value {
        json!({
            "banned": self.clerk_banned,
            "locked": self.is_locked(Utc::now()),
            "lastSignInAt": self.clerk_last_sign_in_at,
            "organizations": self.clerk_organizations,
            "subscriptionStatus": self.clerk_subscription_status,
            "plan": self.clerk_plan,
            "trialEndsAt": self.clerk_trial_ends_at,
        })
    }

    /// What a workflow step's templates and conditions see as `contact`: the contact
    /// as Loops shows it, with the Clerk facts under `clerk`.
    pub fn step_json(&self) -> Value {
        let mut shown = self.to_json();
        shown["clerk"] = self.clerk_json();
        shown
    }

    /// The contact as Loops shows it, plus what Roster knows besides (the API's and
    /// the dashboard's view).
    pub fn details(&self) -> Value {
        let mut shown = self.step_json();
        let extra = json!({
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "unsubscribedAt": self.unsubscribed_at,
            "graduatedAt": self.graduated_at,
            "waitlistStatus": self.waitlist_status,
            "waitlistJoinedAt": self.waitlist_joined_at,
            "properties": self.properties,
        });
        if let (Some(shown), Value::Object(extra)) = (shown.as_object_mut(), extra) {
            shown.extend(extra);
        }
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::properties::check_new_name;

    #[test]
    fn no_custom_property_can_shadow_a_field_of_the_contact_json() {
        let contact = Contact::new("ada@example.com", "API");
        for name in contact.details().as_object().unwrap().keys() {
            assert!(
                check_new_name(name).is_err(),
                "{name} could be created as a custom property"
            );
        }
    }
}
