//! The Clerk sync rules (README, "Sync rules"), on the shared fixtures.

use chrono::DateTime;
use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, fixture, set, spawn_app, spawn_app_with_config};

const USER_ID: &str = "user_2q8XfA1bC3dE4fG5hI6jK7lM8nO";
const EMAIL: &str = "ada@example.com";

fn millis(ms: i64) -> Option<DateTime<chrono::Utc>> {
    DateTime::from_timestamp_millis(ms)
}

async fn deliver_ok(app: &TestApp, event: &Value) -> Value {
    let (status, body) = app.deliver(event).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A waitlist entry for `address`.
fn waitlist_entry_for(address: &str) -> Value {
    let mut event = fixture("waitlistEntry.created");
    set(&mut event, "/data/email_address", json!(address));
    event
}

/// Ada's `user.updated`, with `address` as her primary email.
fn ada_moved_to(address: &str) -> Value {
    let mut event = fixture("user.updated");
    set(
        &mut event,
        "/data/email_addresses/0/email_address",
        json!(address),
    );
    event
}

/// A user event for another person: new user ID, new email.
fn user_event(name: &str, n: usize) -> Value {
    let mut event = fixture(name);
    set(&mut event, "/data/id", json!(format!("user_{n}")));
    set(
        &mut event,
        "/data/email_addresses/0/email_address",
        json!(format!("person{n}@example.com")),
    );
    event
}

#[sqlx::test]
async fn user_created_creates_a_contact(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let body = deliver_ok(&app, &fixture("user.created")).await;
    assert_eq!(body["contact"], "created");
    let contact = app.contact_by_user_id(USER_ID).await.expect("contact");
    assert_eq!(contact.email, EMAIL);
    assert_eq!(contact.first_name.as_deref(), Some("Ada"));
    assert_eq!(contact.last_name.as_deref(), Some("Lovelace"));
    assert_eq!(contact.source, "Clerk");
    assert!(contact.subscribed);
    assert_eq!(contact.user_group, None);
    assert_eq!(contact.clerk_updated_at, millis(1767225600498));
    assert_eq!(contact.graduated_at, None);
}

#[sqlx::test]
async fn newer_update_overwrites_names(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    deliver_ok(&app, &fixture("user.created")).await;
    let body = deliver_ok(&app, &fixture("user.updated")).await;
    assert_eq!(body["contact"], "updated");
    let contact = app.contact_by_user_id(USER_ID).await.unwrap();
    assert_eq!(contact.first_name.as_deref(), Some("Augusta Ada"));
    assert_eq!(contact.clerk_updated_at, millis(1767312000850));
}

#[sqlx::test]
async fn older_update_does_not_overwrite_newer(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    deliver_ok(&app, &fixture("user.updated")).await;
    let body = deliver_ok(&app, &fixture("user.created")).await;
    assert_eq!(body["status"], "processed");
    assert_eq!(body["contact"], "stale");
    let contact = app.contact_by_user_id(USER_ID).await.unwrap();
    assert_eq!(contact.first_name.as_deref(), Some("Augusta Ada"));
    assert_eq!(app.count("contacts").await, 1);
    assert_eq!(
        app.count("clerk_events").await,
        2,
        "both events are in the log"
    );
}

#[sqlx::test]
async fn deleted_user_is_unsubscribed_by_default(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    deliver_ok(&app, &fixture("user.created")).await;
    let body = deliver_ok(&app, &fixture("user.deleted")).await;
    assert_eq!(body["contact"], "unsubscribed");
    let contact = app.contact_by_user_id(USER_ID).await.expect("kept");
    assert!(!contact.subscribed);
    assert_eq!(contact.unsubscribed_at, millis(1769904000123));
    assert_eq!(contact.email, EMAIL);
}

#[sqlx::test]
async fn deleted_user_is_removed_in_delete_mode(_: PgPoolOptions, db: PgConnectOptions) {
    let config = "[clerk.user_deleted]\naction = \"delete\"\n";
    let app = spawn_app_with_config(db, config).await;
    deliver_ok(&app, &fixture("user.created")).await;
    let body = deliver_ok(&app, &fixture("user.deleted")).await;
    assert_eq!(body["contact"], "deleted");
    assert!(app.contact_by_user_id(USER_ID).await.is_none());
    assert_eq!(app.count("contacts").await, 0);
}

#[sqlx::test]
async fn late_update_after_delete_does_not_bring_user_back(_: PgPoolOptions, db: PgConnectOptions) {
    let config = "[clerk.user_deleted]\naction = \"delete\"\n";
    let app = spawn_app_with_config(db, config).await;
    deliver_ok(&app, &fixture("user.created")).await;
    deliver_ok(&app, &fixture("user.deleted")).await;
    for late in ["user.updated", "user.created"] {
        let body = deliver_ok(&app, &fixture(late)).await;
        assert_eq!(body["contact"], "stale", "{late}");
    }
    assert_eq!(app.count("contacts").await, 0);
}

#[sqlx::test]
async fn deletion_before_creation_creates_the_contact_unsubscribed(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let body = deliver_ok(&app, &fixture("user.deleted")).await;
    assert_eq!(body["contact"], "no_contact");
    let body = deliver_ok(&app, &fixture("user.created")).await;
    assert_eq!(body["contact"], "updated");
    let contact = app.contact_by_user_id(USER_ID).await.unwrap();
    assert!(!contact.subscribed, "never resubscribed by an older event");
    assert!(contact.unsubscribed_at.is_some());
    assert_eq!(contact.email, EMAIL);
}

#[sqlx::test]
async fn deletion_before_creation_keeps_nothing_in_delete_mode(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with_config(db, "[clerk.user_deleted]\naction = \"delete\"\n").await;
    deliver_ok(&app, &fixture("user.deleted")).await;
    let body = deliver_ok(&app, &fixture("user.created")).await;
    assert_eq!(body["contact"], "stale");
    assert_eq!(app.count("contacts").await, 0);
    // The address went on the tombstone: a late waitlist event cannot bring it back.
    let body = deliver_ok(&app, &fixture("waitlistEntry.updated")).await;
    assert_eq!(body["contact"], "stale");
    assert_eq!(app.count("contacts").await, 0);
}

#[sqlx::test]
async fn late_update_older_than_the_deletion_still_applies_beneath_it(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    deliver_ok(&app, &fixture("user.created")).await;
    deliver_ok(&app, &fixture("user.deleted")).await;
    let update = fixture("user.updated");
    let body = deliver_ok(&app, &update).await;
    assert_eq!(body["contact"], "updated");
    let contact = app.contact_by_user_id(USER_ID).await.unwrap();
    assert!(!contact.subscribed, "still unsubscribed");
    assert_eq!(
        contact.first_name.as_deref(),
        update["data"]["first_name"].as_str(),
        "the update's fields, as in order"
    );
}

#[sqlx::test]
async fn waitlist_graduation_matches_email_in_any_case(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let joined = waitlist_entry_for("ADA@Example.COM");
    let body = deliver_ok(&app, &joined).await;
    assert_eq!(body["contact"], "created");
    let waitlisted = app.contact_by_email(EMAIL).await.unwrap();
    assert_eq!(waitlisted.user_id, None);
    assert_eq!(waitlisted.waitlist_status.as_deref(), Some("pending"));
    assert_eq!(waitlisted.waitlist_joined_at, millis(1766620800200));

    let body = deliver_ok(&app, &fixture("user.created")).await;
    assert_eq!(body["contact"], "graduated");
    let graduate = app.contact_by_user_id(USER_ID).await.unwrap();
    assert_eq!(graduate.id, waitlisted.id);
    assert_eq!(graduate.graduated_at, millis(1767225600498));
    assert_eq!(
        graduate.waitlist_entry_id.as_deref(),
        Some("wle_2pZyXwVuTsRqPoNmLkJiHgFeDcB")
    );
    assert_eq!(graduate.first_name.as_deref(), Some("Ada"));
    assert_eq!(app.count("contacts").await, 1);
}

#[sqlx::test]
async fn waitlist_updates_apply_in_order_of_updated_at(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    deliver_ok(&app, &fixture("waitlistEntry.updated")).await;
    let body = deliver_ok(&app, &fixture("waitlistEntry.created")).await;
    assert_eq!(body["contact"], "stale");
    let contact = app.contact_by_email(EMAIL).await.unwrap();
    assert_eq!(contact.waitlist_status.as_deref(), Some("invited"));
    assert_eq!(contact.waitlist_updated_at, millis(1767139200701));
}

#[sqlx::test]
async fn user_groups_follow_the_settings(_: PgPoolOptions, db: PgConnectOptions) {
    let config = r#"
        [clerk.waitlist_entry_created]
        user_group = "Waitlist"
        [clerk.waitlist_entry_updated]
        user_group = "Waitlist"
        [clerk.user_created]
        user_group = "Users"
    "#;
    let app = spawn_app_with_config(db, config).await;
    deliver_ok(&app, &fixture("waitlistEntry.created")).await;
    assert_eq!(
        app.contact_by_email(EMAIL)
            .await
            .unwrap()
            .user_group
            .as_deref(),
        Some("Waitlist")
    );
    deliver_ok(&app, &fixture("user.created")).await;
    assert_eq!(
        app.contact_by_email(EMAIL)
            .await
            .unwrap()
            .user_group
            .as_deref(),
        Some("Users")
    );
    // A late waitlist update does not put a graduate back in the waitlist group.
    let mut completed = fixture("waitlistEntry.updated");
    set(&mut completed, "/data/status", json!("completed"));
    deliver_ok(&app, &completed).await;
    let contact = app.contact_by_email(EMAIL).await.unwrap();
    assert_eq!(contact.user_group.as_deref(), Some("Users"));
    assert_eq!(contact.waitlist_status.as_deref(), Some("completed"));
}

#[sqlx::test]
async fn names_are_kept_when_update_names_is_off(_: PgPoolOptions, db: PgConnectOptions) {
    let config = "[clerk.user_updated]\nupdate_names = false\n";
    let app = spawn_app_with_config(db, config).await;
    deliver_ok(&app, &fixture("user.created")).await;
    deliver_ok(&app, &fixture("user.updated")).await;
    let contact = app.contact_by_user_id(USER_ID).await.unwrap();
    assert_eq!(contact.first_name.as_deref(), Some("Ada"));
    assert_eq!(contact.clerk_updated_at, millis(1767312000850));
}

#[sqlx::test]
async fn changed_primary_email_moves_the_contact(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    deliver_ok(&app, &fixture("user.created")).await;
    let mut update = fixture("user.updated");
    update["data"]["email_addresses"]
        .as_array_mut()
        .unwrap()
        .push(json!({"object": "email_address", "id": "idn_new", "email_address": "ada@lovelace.test"}));
    set(
        &mut update,
        "/data/primary_email_address_id",
        json!("idn_new"),
    );
    deliver_ok(&app, &update).await;
    let contact = app.contact_by_user_id(USER_ID).await.unwrap();
    assert_eq!(contact.email, "ada@lovelace.test");
    assert!(
        app.contact_by_email(EMAIL).await.is_none(),
        "the old address is gone"
    );
    assert_eq!(app.count("contacts").await, 1);
}

#[sqlx::test]
async fn changed_primary_email_absorbs_a_waitlist_contact_and_its_opt_out(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    deliver_ok(&app, &fixture("user.created")).await;
    let joined = waitlist_entry_for("ada@lovelace.test");
    deliver_ok(&app, &joined).await;
    assert_eq!(app.count("contacts").await, 2);
    sqlx::query("update contacts set subscribed = false where email = 'ada@lovelace.test'")
        .execute(&app.db)
        .await
        .unwrap();

    let update = ada_moved_to("Ada@Lovelace.test");
    deliver_ok(&app, &update).await;
    let contact = app.contact_by_user_id(USER_ID).await.unwrap();
    assert_eq!(contact.email, "Ada@Lovelace.test");
    assert_eq!(contact.waitlist_status.as_deref(), Some("pending"));
    assert_eq!(app.count("contacts").await, 1);
    assert!(!contact.subscribed, "the absorbed contact had unsubscribed");
}

#[sqlx::test]
async fn user_without_email_changes_no_contact(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut event = fixture("user.created");
    set(&mut event, "/data/primary_email_address_id", Value::Null);
    set(&mut event, "/data/email_addresses", json!([]));
    let body = deliver_ok(&app, &event).await;
    assert_eq!(body["status"], "processed");
    assert_eq!(body["contact"], "no_email");
    assert_eq!(app.count("contacts").await, 0);
    assert_eq!(app.count("clerk_events").await, 1);
}

#[sqlx::test]
async fn disabled_event_is_stored_but_ignored(_: PgPoolOptions, db: PgConnectOptions) {
    let config = "[clerk.user_created]\nenabled = false\n";
    let app = spawn_app_with_config(db, config).await;
    let body = deliver_ok(&app, &fixture("user.created")).await;
    assert_eq!(body["status"], "ignored");
    assert_eq!(app.count("contacts").await, 0);
    assert_eq!(app.count("clerk_events").await, 1);
    let body = deliver_ok(&app, &fixture("user.updated")).await;
    assert_eq!(body["contact"], "created", "user.updated is still on");
}

#[sqlx::test]
async fn concurrent_deliveries_for_one_user_leave_the_newer_state(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let users = 10;
    let events: Vec<Value> = (0..users)
        .flat_map(|n| [user_event("user.created", n), user_event("user.updated", n)])
        .collect();
    // Every pair arrives at once: both find no contact, both want to create it.
    let statuses = join_all(events.iter().map(|event| app.deliver(event))).await;
    assert!(
        statuses.iter().all(|(status, _)| *status == 200),
        "{statuses:?}"
    );
    assert_eq!(app.count("contacts").await, users as i64);
    for n in 0..users {
        let contact = app.contact_by_user_id(&format!("user_{n}")).await.unwrap();
        assert_eq!(
            contact.first_name.as_deref(),
            Some("Augusta Ada"),
            "user_{n}"
        );
    }
}

#[sqlx::test]
async fn concurrent_waitlist_entry_and_sign_up_make_one_contact(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let (joined, created) = (fixture("waitlistEntry.created"), fixture("user.created"));
    let (a, b) = tokio::join!(app.deliver(&joined), app.deliver(&created));
    assert_eq!((a.0, b.0), (200, 200));
    assert_eq!(app.count("contacts").await, 1);
    let contact = app.contact_by_email(EMAIL).await.unwrap();
    assert_eq!(contact.user_id.as_deref(), Some(USER_ID));
    assert_eq!(contact.waitlist_status.as_deref(), Some("pending"));
}

#[sqlx::test]
async fn address_still_on_another_live_user_waits_for_that_user(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    deliver_ok(&app, &fixture("user.created")).await;
    // In Clerk, Ada moved to a new address and a second user took hers; the second
    // user's sign-up arrives first.
    let mut second = fixture("user.created");
    set(&mut second, "/data/id", json!("user_second"));
    let (status, body) = app.deliver(&second).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("retry later"));
    assert_eq!(
        app.contact_by_email(EMAIL)
            .await
            .unwrap()
            .user_id
            .as_deref(),
        Some(USER_ID)
    );

    let moved = ada_moved_to("ada@lovelace.test");
    deliver_ok(&app, &moved).await;
    let body = deliver_ok(&app, &second).await;
    assert_eq!(
        body["contact"], "created",
        "Svix's retry applies once the address is free"
    );
    assert_eq!(
        app.contact_by_email(EMAIL)
            .await
            .unwrap()
            .user_id
            .as_deref(),
        Some("user_second")
    );
    assert_eq!(
        app.contact_by_user_id(USER_ID).await.unwrap().email,
        "ada@lovelace.test"
    );
}

#[sqlx::test]
async fn new_user_with_a_deleted_users_address_takes_the_contact_over(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    deliver_ok(&app, &fixture("user.created")).await;
    deliver_ok(&app, &fixture("user.deleted")).await;
    let mut again = fixture("user.created");
    set(&mut again, "/data/id", json!("user_again"));
    set(&mut again, "/data/updated_at", json!(1769904999000i64));
    let body = deliver_ok(&app, &again).await;
    assert_eq!(body["contact"], "updated");
    let contact = app.contact_by_email(EMAIL).await.unwrap();
    assert_eq!(contact.user_id.as_deref(), Some("user_again"));
    assert_eq!(app.count("contacts").await, 1);
}

#[sqlx::test]
async fn late_waitlist_event_does_not_bring_a_deleted_user_back(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with_config(db, "[clerk.user_deleted]\naction = \"delete\"\n").await;
    deliver_ok(&app, &fixture("user.created")).await;
    deliver_ok(&app, &fixture("user.deleted")).await;
    let body = deliver_ok(&app, &fixture("waitlistEntry.updated")).await;
    assert_eq!(body["contact"], "stale");
    assert_eq!(app.count("contacts").await, 0);
    // Joining the waitlist again after the deletion is a new start.
    let mut rejoined = fixture("waitlistEntry.created");
    set(&mut rejoined, "/data/updated_at", json!(1769904999000i64));
    assert_eq!(deliver_ok(&app, &rejoined).await["contact"], "created");
}
