//! Whom a Clerk event is about, for the workflows it triggers: the user it names
//! (`data.user_id` for sessions and emails, `data.public_user_data.user_id` for
//! organization memberships, `data.payer.user_id` for Clerk Billing, `data.created_by`
//! for organizations, `data.id` for users), else the address it names
//! (`data.email_address` for invitations and waitlist entries, `data.to_email_address`
//! for emails).

use serde_json::{Value, json};

/// The person an event names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Email(String),
}

impl Subject {
    /// Who `data` (of an event of type `event_type`) is about, if it names anyone.
    pub fn of(event_type: &str, data: &Value) -> Option<Self> {
        let text = |pointer: &str| {
            data.pointer(pointer)
                .and_then(Value::as_str)
                .filter(|text| !text.trim().is_empty())
                .map(str::to_owned)
        };
        let user = if event_type.starts_with("user.") {
            text("/id")
        } else {
            [
                "/user_id",
                "/public_user_data/user_id",
                "/payer/user_id",
                "/created_by",
            ]
            .into_iter()
            .find_map(text)
        };
        user.map(Self::User).or_else(|| {
            ["/email_address", "/to_email_address"]
                .into_iter()
                .find_map(text)
                .map(Self::Email)
        })
    }

    /// What a run that could not start shows as its contact.
    pub fn to_json(&self) -> Value {
        match self {
            Self::User(user_id) => json!({ "userId": user_id }),
            Self::Email(email) => json!({ "email": email }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_names_its_user() {
        let user = |id: &str| Some(Subject::User(id.to_owned()));
        let cases = [
            (
                "session.created",
                json!({ "id": "sess_1", "user_id": "user_1" }),
                user("user_1"),
            ),
            (
                "organizationMembership.created",
                json!({ "id": "orgmem_1", "public_user_data": { "user_id": "user_2" } }),
                user("user_2"),
            ),
            (
                "subscriptionItem.freeTrialEnding",
                json!({ "id": "csi_1", "payer": { "user_id": "user_3", "organization_id": null } }),
                user("user_3"),
            ),
            (
                "organization.created",
                json!({ "id": "org_1", "created_by": "user_4" }),
                user("user_4"),
            ),
            ("user.updated", json!({ "id": "user_5" }), user("user_5")),
            (
                "organizationInvitation.accepted",
                json!({ "id": "orginv_1", "email_address": "ada@example.com" }),
                Some(Subject::Email("ada@example.com".into())),
            ),
            (
                "email.created",
                json!({ "id": "ema_1", "user_id": null, "to_email_address": "bo@example.com" }),
                Some(Subject::Email("bo@example.com".into())),
            ),
            (
                "subscription.created",
                json!({ "payer": { "organization_id": "org_1" } }),
                None,
            ),
            (
                "organization.deleted",
                json!({ "id": "org_1", "deleted": true }),
                None,
            ),
        ];
        for (event_type, data, expected) in cases {
            assert_eq!(Subject::of(event_type, &data), expected, "{event_type}");
        }
    }
}
