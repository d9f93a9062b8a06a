//! Contacts: the audience. The row type and the repository functions every writer
//! (Clerk sync now, the API later) shares.

pub mod properties;
pub mod store;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// The longest address taken: what SMTP carries (RFC 5321's 254 characters of a path).
pub const MAX_EMAIL_CHARS: usize = 254;

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
}
