//! Sample Clerk events (`samples/*.json`, shaped as Clerk sends them), made fresh for
//! `roster send-test-event` and the dashboard's test event: timed now, for the person
//! an address names (one user ID per address, so a second event updates the first's
//! contact), with new object IDs.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The sample of each event type, as stored in `samples/`.
const SAMPLES: [(&str, &str); 14] = [
    ("user.created", include_str!("samples/user.created.json")),
    ("user.updated", include_str!("samples/user.updated.json")),
    ("user.deleted", include_str!("samples/user.deleted.json")),
    (
        "session.created",
        include_str!("samples/session.created.json"),
    ),
    ("email.created", include_str!("samples/email.created.json")),
    (
        "waitlistEntry.created",
        include_str!("samples/waitlistEntry.created.json"),
    ),
    (
        "waitlistEntry.updated",
        include_str!("samples/waitlistEntry.updated.json"),
    ),
    (
        "organization.created",
        include_str!("samples/organization.created.json"),
    ),
    (
        "organizationMembership.created",
        include_str!("samples/organizationMembership.created.json"),
    ),
    (
        "organizationInvitation.accepted",
        include_str!("samples/organizationInvitation.accepted.json"),
    ),
    (
        "subscription.active",
        include_str!("samples/subscription.active.json"),
    ),
    (
        "subscriptionItem.active",
        include_str!("samples/subscriptionItem.active.json"),
    ),
    (
        "subscriptionItem.freeTrialEnding",
        include_str!("samples/subscriptionItem.freeTrialEnding.json"),
    ),
    (
        "paymentAttempt.updated",
        include_str!("samples/paymentAttempt.updated.json"),
    ),
];

/// The address a test event is for when none is given.
pub const DEFAULT_EMAIL: &str = "ada@example.com";

/// The event types there are samples of.
pub fn sample_types() -> impl Iterator<Item = &'static str> {
    SAMPLES.iter().map(|(event_type, _)| *event_type)
}

/// A fresh sample event of `event_type` about the person at `email`, timed `now`.
pub fn sample_event(event_type: &str, email: &str, now: DateTime<Utc>) -> Result<Value, String> {
    let (_, sample) = SAMPLES
        .iter()
        .find(|(known, _)| *known == event_type)
        .ok_or_else(|| {
            format!(
                "there is no sample {event_type} event; there are: {}",
                sample_types().collect::<Vec<_>>().join(", ")
            )
        })?;
    let mut event: Value = serde_json::from_str(sample).expect("the samples are JSON");
    let ms = now.timestamp_millis();
    let user_id = test_user_id(email);
    let unique = uuid::Uuid::now_v7().simple().to_string();
    event["timestamp"] = json!(ms);
    let data = &mut event["data"];
    for field in ["created_at", "updated_at"] {
        if data.get(field).is_some() {
            data[field] = json!(ms);
        }
    }
    match event_type.split('.').next() {
        Some("user") => {
            data["id"] = json!(user_id);
            if let Some(address) = data.pointer_mut("/email_addresses/0/email_address") {
                *address = json!(email);
            }
        }
        Some("waitlistEntry") => {
            data["id"] = json!(format!("wle_test{}", &unique[..24]));
            data["email_address"] = json!(email);
        }
        _ => {
            let id = data["id"]
                .as_str()
                .unwrap_or("test")
                .split('_')
                .next()
                .unwrap_or("test");
            data["id"] = json!(format!("{id}_test{}", &unique[..24]));
            for pointer in [
                "/user_id",
                "/public_user_data/user_id",
                "/payer/user_id",
                "/created_by",
            ] {
                if let Some(value) = data.pointer_mut(pointer) {
                    *value = json!(user_id);
                }
            }
            for pointer in [
                "/email_address",
                "/to_email_address",
                "/payer/email",
                "/public_user_data/identifier",
            ] {
                if let Some(value) = data.pointer_mut(pointer) {
                    *value = json!(email);
                }
            }
        }
    }
    if event_type == "subscriptionItem.freeTrialEnding" {
        data["period_end"] = json!(ms + 3 * 24 * 60 * 60 * 1000);
    }
    Ok(event)
}

/// The test user of `email`: the same address, the same user.
pub fn test_user_id(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    format!("user_test{}", &hex::encode(digest)[..24])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clerk::subject::Subject;

    #[test]
    fn every_sample_names_the_person_of_the_address() {
        let now = Utc::now();
        for event_type in sample_types() {
            let event = sample_event(event_type, "grace@example.com", now).unwrap();
            assert_eq!(event["type"], event_type);
            assert_eq!(event["timestamp"], now.timestamp_millis());
            let subject = Subject::of(event_type, &event["data"]);
            if event_type.starts_with("waitlistEntry.") {
                assert_eq!(subject, Some(Subject::Email("grace@example.com".into())));
            } else if event_type != "user.deleted" {
                assert_eq!(
                    subject,
                    Some(Subject::User(test_user_id("grace@example.com"))),
                    "{event_type}"
                );
            }
        }
        assert!(sample_event("user.exploded", DEFAULT_EMAIL, now).is_err());
    }
}
