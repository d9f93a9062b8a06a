//! Every Clerk event as a trigger, for the contact of the user it names, and the Clerk
//! facts on the contact: last sign-in, banned and locked, organizations with their
//! roles, Clerk Billing, and metadata mapped to typed custom properties. Against a real
//! PostgreSQL and a real SMTP server on loopback.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, fixture, set, spawn_app_with_config, spawn_app_with_smtp};
use crate::segments::{matching, one};

const ADA: &str = "user_2q8XfA1bC3dE4fG5hI6jK7lM8nO";
const ORG: &str = "org_2qAbCdEfGhIjKlMnOpQrStUvWx";

/// The shipped example workflows, plus one on each family of events.
static CONFIG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}\n{}",
        include_str!("../../roster.example.toml"),
        r#"
[[workflows]]
name = "first_sign_in"
trigger = "session.created"
steps = [{ send = "tips" }]

[[workflows]]
name = "joined_team"
trigger = "organizationMembership.created"
steps = [
  { if = "event.data.organization.slug == 'analytical-engines' and contact.clerk.organizations[0].role == 'org:admin'" },
  { send = "welcome" },
]
"#
    )
});

fn config() -> &'static str {
    CONFIG.as_str()
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

async fn runs(app: &TestApp, workflow: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "select state, exit_reason from workflow_runs where workflow = $1 order by created_at",
    )
    .bind(workflow)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_session_starts_its_workflow_for_the_user_and_is_their_last_sign_in(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, config()).await;
    // The session arrives before the user's sign-up, as Clerk often sends them: kept,
    // no contact changes and no run starts.
    let (status, body) = app.deliver(&fixture("session.created")).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("ignored")),
        "{body}"
    );
    assert_eq!(
        runs(&app, "first_sign_in").await,
        [(
            "exited".to_owned(),
            Some(format!("no contact: Clerk user {ADA} has none"))
        )],
        "the run log says why nothing started"
    );
    app.deliver(&fixture("user.created")).await;
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert_eq!(
        contact.clerk_last_sign_in_at,
        Some(millis(1767312000000)),
        "kept for the user until their contact existed"
    );

    let mut later = fixture("session.created");
    set(&mut later, "/data/id", json!("sess_later"));
    set(&mut later, "/data/created_at", json!(1767400000000i64));
    app.deliver(&later).await;
    // An older session delivered late does not move the last sign-in back.
    let mut older = fixture("session.created");
    set(&mut older, "/data/created_at", json!(1767300000000i64));
    app.deliver(&older).await;
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert_eq!(contact.clerk_last_sign_in_at, Some(millis(1767400000000)));

    app.run_jobs_at(Utc::now()).await;
    let tips = smtp
        .subjects()
        .iter()
        .filter(|s| !s.starts_with("Welcome"))
        .count();
    assert_eq!(tips, 1, "once per contact: {:?}", smtp.subjects());
    assert_eq!(runs(&app, "first_sign_in").await.len(), 2);
}

/// The membership of Ada in the organization after `events` (created, updated to
/// member, deleted, re-created) are delivered in this order.
async fn organizations_after(app: &TestApp, order: &[usize]) -> Value {
    sqlx::query("delete from clerk_memberships")
        .execute(&app.db)
        .await
        .unwrap();
    let versions = [
        (
            "organizationMembership.created",
            1767312600000i64,
            "org:admin",
        ),
        (
            "organizationMembership.updated",
            1767312700000,
            "org:member",
        ),
        (
            "organizationMembership.deleted",
            1767312800000,
            "org:member",
        ),
        (
            "organizationMembership.created",
            1767312900000,
            "org:billing",
        ),
    ];
    for &i in order {
        let (event_type, at, role) = versions[i];
        let mut event = fixture("organizationMembership.created");
        set(&mut event, "/type", json!(event_type));
        set(&mut event, "/timestamp", json!(at + 50));
        set(&mut event, "/data/updated_at", json!(at));
        set(&mut event, "/data/role", json!(role));
        assert_eq!(app.deliver(&event).await.0, 200);
        // Delivered twice: a retry changes nothing.
        assert_eq!(app.deliver(&event).await.0, 200);
    }
    app.contact_by_user_id(ADA)
        .await
        .unwrap()
        .clerk_organizations
}

#[sqlx::test]
async fn memberships_in_any_order_end_as_in_order(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with_config(db, config()).await;
    app.deliver(&fixture("user.created")).await;
    let member = |role: &str| json!([{ "id": ORG, "name": "Analytical Engines", "slug": "analytical-engines", "role": role }]);
    // Every order of the four events, against what in-order delivery of each prefix
    // gives (a model: the newest event wins, a deletion wins a tie).
    let mut orders = vec![vec![0usize, 1, 2, 3]];
    permutations(&mut vec![0, 1, 2, 3], 0, &mut orders);
    for order in orders {
        let expected = match order.iter().max() {
            Some(3) => member("org:billing"),
            Some(2) => json!([]),
            Some(1) => member("org:member"),
            _ => member("org:admin"),
        };
        assert_eq!(
            organizations_after(&app, &order).await,
            expected,
            "{order:?}"
        );
    }
    for prefix in [vec![0], vec![0, 1], vec![1, 0, 2]] {
        let expected = match prefix.iter().max() {
            Some(2) => json!([]),
            Some(1) => member("org:member"),
            _ => member("org:admin"),
        };
        assert_eq!(
            organizations_after(&app, &prefix).await,
            expected,
            "{prefix:?}"
        );
    }

    // An organization's deletion ends its memberships older than it.
    organizations_after(&app, &[0]).await;
    let deleted = json!({ "object": "event", "type": "organization.deleted", "timestamp": 1767313000000i64,
        "data": { "object": "organization", "id": ORG, "deleted": true } });
    assert_eq!(app.deliver(&deleted).await.0, 200);
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert_eq!(contact.clerk_organizations, json!([]));

    // Segments see the organizations and roles.
    organizations_after(&app, &[0]).await;
    assert_eq!(
        matching(
            &app,
            one(
                "clerk.organizations",
                "contains",
                json!("analytical-engines:org:admin")
            )
        )
        .await,
        ["ada@example.com"]
    );
}

fn permutations(items: &mut Vec<usize>, k: usize, out: &mut Vec<Vec<usize>>) {
    if k == items.len() {
        out.push(items.clone());
        return;
    }
    for i in k..items.len() {
        items.swap(k, i);
        permutations(items, k + 1, out);
        items.swap(k, i);
    }
}

#[sqlx::test]
async fn a_membership_starts_its_workflow_for_the_member(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, config()).await;
    app.deliver(&fixture("user.created")).await;
    app.deliver(&fixture("organizationMembership.created"))
        .await;
    app.run_jobs_at(Utc::now()).await;
    let welcomes = smtp
        .subjects()
        .iter()
        .filter(|s| s.starts_with("Welcome"))
        .count();
    // The onboarding welcome, and the team one: its condition read the event and the
    // contact's organizations.
    assert_eq!(welcomes, 2, "{:?}", smtp.subjects());
    assert_eq!(
        runs(&app, "joined_team").await,
        [("completed".to_owned(), None)]
    );

    // An invitation accepted by a user with no contact: recorded, nothing sent.
    app.deliver(&fixture("organizationInvitation.accepted"))
        .await;
    assert_eq!(app.count("workflow_runs").await, 2);
}

#[sqlx::test]
async fn billing_sets_the_subscription_and_drives_the_example_workflows(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, config()).await;
    app.deliver(&fixture("user.created")).await;
    assert_eq!(app.deliver(&fixture("subscription.active")).await.0, 200);
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert_eq!(
        (
            contact.clerk_subscription_status.as_deref(),
            contact.clerk_plan.as_deref(),
            contact.clerk_trial_ends_at
        ),
        (Some("active"), Some("pro"), Some(millis(1768608000000)))
    );
    // An older subscription event delivered late changes nothing.
    let mut older = fixture("subscription.active");
    set(&mut older, "/type", json!("subscription.pastDue"));
    set(&mut older, "/data/status", json!("past_due"));
    set(&mut older, "/data/updated_at", json!(1767300000000i64));
    app.deliver(&older).await;
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert_eq!(contact.clerk_subscription_status.as_deref(), Some("active"));
    assert_eq!(
        matching(&app, one("clerk.plan", "equals", json!("pro"))).await,
        ["ada@example.com"]
    );

    app.deliver(&fixture("subscriptionItem.freeTrialEnding"))
        .await;
    app.deliver(&fixture("subscriptionItem.active")).await;
    app.deliver(&fixture("paymentAttempt.updated")).await;
    let mut paid = fixture("paymentAttempt.updated");
    set(&mut paid, "/data/status", json!("paid"));
    app.deliver(&paid).await;
    app.run_jobs_at(Utc::now()).await;
    let mut sent = smtp.subjects();
    sent.sort();
    assert_eq!(
        sent,
        [
            "Welcome to Pro",
            "Welcome, Ada!",
            "Your Pro trial ends in 3 days",
            "Your payment did not go through",
        ],
        "the paid attempt sends nothing"
    );
    assert_eq!(
        runs(&app, "payment_failed").await[1],
        (
            "exited".to_owned(),
            Some("condition not met: event.data.status == 'failed'".to_owned())
        )
    );
}

#[sqlx::test]
async fn banned_and_locked_users_get_no_marketing_email(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, config()).await;
    let mut banned = fixture("user.created");
    set(&mut banned, "/data/banned", json!(true));
    app.deliver(&banned).await;
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert!(contact.clerk_banned);
    // Transactional email still goes: it is about the account.
    app.deliver(&fixture("subscriptionItem.freeTrialEnding"))
        .await;
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(smtp.subjects(), ["Your Pro trial ends in 3 days"]);
    assert_eq!(
        runs(&app, "onboarding").await,
        [(
            "exited".to_owned(),
            Some("the user is banned in Clerk".to_owned())
        )]
    );

    let mut locked = fixture("user.updated");
    set(&mut locked, "/data/banned", json!(false));
    set(&mut locked, "/data/locked", json!(true));
    app.deliver(&locked).await;
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert!(!contact.clerk_banned && contact.clerk_locked);
    app.deliver(&fixture("subscriptionItem.active")).await;
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(
        runs(&app, "upgraded").await,
        [(
            "exited".to_owned(),
            Some("the user is locked in Clerk".to_owned())
        )]
    );
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(
        matching(&app, one("clerk.locked", "equals", json!(true))).await,
        ["ada@example.com"]
    );

    // A lockout of 30 minutes, long over (Clerk sends no event when it ends).
    let mut lockout = fixture("user.updated");
    set(&mut lockout, "/data/locked", json!(true));
    set(
        &mut lockout,
        "/data/lockout_expires_in_seconds",
        json!(1800),
    );
    set(&mut lockout, "/data/updated_at", json!(1767400000000i64));
    app.deliver(&lockout).await;
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert!(contact.clerk_locked && !contact.is_locked(Utc::now()));
    assert_eq!(
        contact.clerk_locked_until,
        Some(millis(1767400000000 + 1800 * 1000))
    );
    app.deliver(&fixture("subscriptionItem.active")).await;
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(smtp.messages().len(), 2, "sent once the lockout ran out");
    assert!(
        matching(&app, one("clerk.locked", "equals", json!(true)))
            .await
            .is_empty()
    );
}

const MAPPED: &str = r#"
[clerk.properties]
company = "public_metadata.company"
seats = { from = "public_metadata.billing.seats", type = "number" }
renewsAt = { from = "private_metadata.renews_at", type = "date" }
vip = { from = "unsafe_metadata.vip", type = "boolean" }
"#;

#[sqlx::test]
async fn metadata_is_mapped_to_typed_custom_properties(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with_config(db, MAPPED).await;
    let types: Vec<(String, String)> =
        sqlx::query_as("select name, type from contact_properties order by name")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        types,
        [
            ("company".into(), "string".into()),
            ("renewsAt".into(), "date".into()),
            ("seats".into(), "number".into()),
            ("vip".into(), "boolean".into()),
        ],
        "created at start with their types"
    );
    let mut user = fixture("user.created");
    set(
        &mut user,
        "/data/public_metadata",
        json!({ "company": "Analytical Engines", "billing": { "seats": 5 } }),
    );
    set(
        &mut user,
        "/data/private_metadata",
        json!({ "renews_at": 1767225600000i64 }),
    );
    set(&mut user, "/data/unsafe_metadata", json!({ "vip": true }));
    app.deliver(&user).await;
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert_eq!(
        contact.properties,
        json!({ "company": "Analytical Engines", "seats": 5, "renewsAt": "2026-01-01T00:00:00.000Z", "vip": true })
    );
    assert_eq!(
        matching(&app, one("seats", "greaterThan", json!(3))).await,
        ["ada@example.com"]
    );

    // The key is gone from the metadata: the property is cleared. A value of another
    // type is left out: the property keeps its value, and the event still applies.
    let mut update = fixture("user.updated");
    set(
        &mut update,
        "/data/public_metadata",
        json!({ "billing": { "seats": "ten" } }),
    );
    set(&mut update, "/data/private_metadata", Value::Null);
    set(
        &mut update,
        "/data/unsafe_metadata",
        json!({ "vip": false }),
    );
    assert_eq!(app.deliver(&update).await.0, 200);
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert_eq!(contact.properties, json!({ "seats": 5, "vip": false }));
    assert_eq!(
        contact.first_name.as_deref(),
        Some("Augusta Ada"),
        "the update applied"
    );

    // An older event changes nothing, its metadata neither.
    app.deliver(&user).await;
    let contact = app.contact_by_user_id(ADA).await.unwrap();
    assert_eq!(contact.properties, json!({ "seats": 5, "vip": false }));
}

#[sqlx::test]
async fn a_mapped_property_of_another_type_stops_the_start(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = PgPoolOptions::new().connect_with(db).await.unwrap();
    sqlx::query("insert into contact_properties (name, type) values ('seats', 'string')")
        .execute(&pool)
        .await
        .unwrap();
    let file: roster::config::ConfigFile = toml::from_str(MAPPED).unwrap();
    let error = roster::clerk::sync::facts::register_mapped_properties(
        &mut pool.acquire().await.unwrap(),
        &file.clerk.properties,
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("[clerk.properties] seats"),
        "{error}"
    );
}
