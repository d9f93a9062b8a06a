//! Analytics on hand-computed event sets delivered as real webhooks: every figure, the
//! bucket edges (UTC midnight belongs to the day it starts), zero-filled buckets, and
//! events Clerk sent twice counted once.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Delivery, TestApp, fixture, set, spawn_app};

fn ms(at: &str) -> i64 {
    at.parse::<DateTime<Utc>>().unwrap().timestamp_millis()
}

/// A Clerk event of `kind` at `at` (envelope time), about `id`.
fn event(kind: &str, at: &str, id: &str) -> Value {
    let mut event = match kind {
        "user.created"
        | "user.updated"
        | "user.deleted"
        | "session.created"
        | "waitlistEntry.created"
        | "waitlistEntry.updated" => fixture(kind),
        _ => {
            json!({ "object": "event", "type": kind, "data": { "object": kind.split('.').next() } })
        }
    };
    event["timestamp"] = json!(ms(at));
    event["data"]["id"] = json!(id);
    if kind.starts_with("user.") && kind != "user.deleted" {
        set(
            &mut event,
            "/data/email_addresses/0/email_address",
            json!(format!("{id}@example.com")),
        );
        set(&mut event, "/data/updated_at", json!(ms(at)));
    }
    event
}

fn session(at: &str, user: &str) -> Value {
    let mut event = event("session.created", at, &format!("sess_{user}_{}", ms(at)));
    event["data"]["user_id"] = json!(user);
    event
}

async fn deliver_all(app: &TestApp, events: &[Value]) {
    for event in events {
        let (status, body) = app.deliver(event).await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn analytics(app: &TestApp, route: &str, query: &str) -> Value {
    let (status, body) = app.api_get(&format!("/v1/analytics/{route}?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn column(body: &Value, field: &str) -> Vec<Value> {
    body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[field].clone())
        .collect()
}

const THREE_DAYS: &str = "from=2026-01-01&to=2026-01-04&interval=day";

#[sqlx::test]
async fn growth_counts_signups_deletions_totals_and_churn(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let u1 = event("user.created", "2026-01-01T00:00:00Z", "u1");
    let u3 = event("user.created", "2026-01-02T00:00:00Z", "u3");
    deliver_all(
        &app,
        &[
            event("user.created", "2025-12-31T12:00:00Z", "u0"),
            u1.clone(),
            event("user.created", "2026-01-01T23:59:59.999Z", "u2"),
            u3.clone(),
            u3.clone(), // Clerk sent it twice, under two svix IDs
            event("user.deleted", "2026-01-02T10:00:00Z", "u0"),
            event("user.created", "2026-01-04T00:00:00Z", "u4"), // the end is exclusive
            event("organization.created", "2026-01-01T09:00:00Z", "org_1"),
            event("organization.created", "2026-01-03T09:00:00Z", "org_2"),
            event("organization.deleted", "2026-01-03T10:00:00Z", "org_1"),
        ],
    )
    .await;
    // The same delivery again: a duplicate, stored once.
    let again = Delivery::of(&u1);
    app.send(&again).await;
    app.send(&again).await;

    let body = analytics(&app, "growth", THREE_DAYS).await;
    assert_eq!(body["from"], "2026-01-01T00:00:00Z");
    assert_eq!(body["interval"], "day");
    assert_eq!(
        column(&body, "start"),
        [
            json!("2026-01-01T00:00:00Z"),
            json!("2026-01-02T00:00:00Z"),
            json!("2026-01-03T00:00:00Z")
        ]
    );
    assert_eq!(column(&body, "signups"), [json!(2), json!(1), json!(0)]);
    assert_eq!(column(&body, "deletions"), [json!(0), json!(1), json!(0)]);
    assert_eq!(column(&body, "netGrowth"), [json!(2), json!(0), json!(0)]);
    assert_eq!(column(&body, "totalUsers"), [json!(3), json!(3), json!(3)]);
    assert_eq!(
        column(&body, "churnRate"),
        [json!(0.0), json!(1.0 / 3.0), json!(0.0)]
    );
    assert_eq!(
        column(&body, "organizationsCreated"),
        [json!(1), json!(0), json!(1)]
    );
    assert_eq!(
        column(&body, "organizationsDeleted"),
        [json!(0), json!(0), json!(1)]
    );
    assert_eq!(
        column(&body, "totalOrganizations"),
        [json!(1), json!(1), json!(1)]
    );

    let churn = analytics(&app, "churn", THREE_DAYS).await;
    assert_eq!(
        column(&churn, "usersAtStart"),
        [json!(1), json!(3), json!(3)]
    );
    assert_eq!(
        column(&churn, "churnRate"),
        [json!(0.0), json!(1.0 / 3.0), json!(0.0)]
    );

    // Weekly: the range starts on the Monday of its first day's week, so u0 is in it.
    let weekly = analytics(
        &app,
        "growth",
        "from=2026-01-01&to=2026-01-04&interval=week",
    )
    .await;
    assert_eq!(column(&weekly, "start"), [json!("2025-12-29T00:00:00Z")]);
    assert_eq!(column(&weekly, "signups"), [json!(4)]);
    assert_eq!(column(&weekly, "totalUsers"), [json!(3)]);
    assert_eq!(
        column(&weekly, "churnRate"),
        [Value::Null],
        "no users at the start"
    );

    // Monthly, with an empty month filled with zeros; u4 is in January.
    let monthly = analytics(
        &app,
        "growth",
        "from=2025-11-15&to=2026-02-01&interval=month",
    )
    .await;
    assert_eq!(column(&monthly, "start")[0], json!("2025-11-01T00:00:00Z"));
    assert_eq!(column(&monthly, "signups"), [json!(0), json!(1), json!(4)]);
    assert_eq!(
        column(&monthly, "deletions"),
        [json!(0), json!(0), json!(1)]
    );
    assert_eq!(
        column(&monthly, "totalUsers"),
        [json!(0), json!(1), json!(4)]
    );
}

#[sqlx::test]
async fn the_waitlist_funnel_follows_entries_to_graduation(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let entry = |kind: &str, at: &str, id: &str, email: &str, status: &str, joined: &str| {
        let mut event = event(kind, at, id);
        set(&mut event, "/data/email_address", json!(email));
        set(&mut event, "/data/status", json!(status));
        set(&mut event, "/data/created_at", json!(ms(joined)));
        set(&mut event, "/data/updated_at", json!(ms(at)));
        event
    };
    let mut ada_user = event("user.created", "2026-01-03T10:00:00Z", "u_ada");
    set(
        &mut ada_user,
        "/data/email_addresses/0/email_address",
        json!("ada@example.com"),
    );
    deliver_all(
        &app,
        &[
            entry(
                "waitlistEntry.created",
                "2026-01-01T10:00:00Z",
                "w1",
                "ada@example.com",
                "pending",
                "2026-01-01T10:00:00Z",
            ),
            entry(
                "waitlistEntry.created",
                "2026-01-02T10:00:00Z",
                "w2",
                "bob@example.com",
                "pending",
                "2026-01-02T10:00:00Z",
            ),
            entry(
                "waitlistEntry.updated",
                "2026-01-02T12:00:00Z",
                "w1",
                "ada@example.com",
                "invited",
                "2026-01-01T10:00:00Z",
            ),
            entry(
                "waitlistEntry.updated",
                "2026-01-03T09:00:00Z",
                "w2",
                "bob@example.com",
                "rejected",
                "2026-01-02T10:00:00Z",
            ),
            ada_user,
        ],
    )
    .await;
    let body = analytics(&app, "waitlist", THREE_DAYS).await;
    assert_eq!(column(&body, "joined"), [json!(1), json!(1), json!(0)]);
    assert_eq!(column(&body, "invited"), [json!(0), json!(1), json!(0)]);
    assert_eq!(column(&body, "rejected"), [json!(0), json!(0), json!(1)]);
    assert_eq!(column(&body, "graduated"), [json!(0), json!(0), json!(1)]);
    assert_eq!(
        (
            &body["joined"],
            &body["invited"],
            &body["graduated"],
            &body["rejected"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(body["conversionRate"], 0.5);
    assert_eq!(body["medianSecondsToGraduate"], 172_800.0);
    assert_eq!(body["p90SecondsToGraduate"], 172_800.0);
}

#[sqlx::test]
async fn active_users_and_event_counts_per_bucket(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    deliver_all(
        &app,
        &[
            session("2026-01-01T09:00:00Z", "u1"),
            session("2026-01-01T23:00:00Z", "u2"),
            session("2026-01-02T00:00:00Z", "u1"),
            event("user.created", "2026-01-02T05:00:00Z", "u9"),
        ],
    )
    .await;
    // Svix retries one delivery (one svix-id) twice more: it counts once everywhere.
    let retried = Delivery::of(&session("2026-01-01T08:00:00Z", "u1"));
    for _ in 0..3 {
        assert_eq!(app.send(&retried).await.status(), 200);
    }
    let active = analytics(&app, "active-users", THREE_DAYS).await;
    assert_eq!(
        column(&active, "activeUsers"),
        [json!(2), json!(1), json!(0)]
    );
    assert_eq!(column(&active, "sessions"), [json!(3), json!(1), json!(0)]);

    let events = analytics(&app, "events", THREE_DAYS).await;
    assert_eq!(events["types"], json!(["session.created", "user.created"]));
    assert_eq!(
        column(&events, "counts"),
        [
            json!({ "session.created": 3, "user.created": 0 }),
            json!({ "session.created": 1, "user.created": 1 }),
            json!({ "session.created": 0, "user.created": 0 }),
        ]
    );
    // A range ending within a day counts that day up to its end only.
    let partial = analytics(&app, "events", "from=2026-01-01&to=2026-01-02T00:30:00Z").await;
    assert_eq!(partial["types"], json!(["session.created"]));
    assert_eq!(
        column(&partial, "counts"),
        [
            json!({ "session.created": 3 }),
            json!({ "session.created": 1 })
        ]
    );
}

#[sqlx::test]
async fn auth_health_counts_banned_locked_failed_and_revoked(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let update = |at: &str, id: &str, pointer: &str, value: Value| {
        let mut event = event("user.updated", at, id);
        set(&mut event, pointer, value);
        event
    };
    deliver_all(
        &app,
        &[
            update("2026-01-01T08:00:00Z", "u1", "/data/banned", json!(true)),
            update("2026-01-01T09:00:00Z", "u1", "/data/banned", json!(true)),
            update("2026-01-02T08:00:00Z", "u2", "/data/locked", json!(true)),
            update(
                "2026-01-02T09:00:00Z",
                "u3",
                "/data/email_addresses/0/verification/status",
                json!("failed"),
            ),
            update("2026-01-02T10:00:00Z", "u4", "/data/banned", json!(false)),
            event("session.revoked", "2026-01-03T01:00:00Z", "sess_1"),
            event("session.revoked", "2026-01-03T02:00:00Z", "sess_2"),
        ],
    )
    .await;
    let body = analytics(&app, "auth", THREE_DAYS).await;
    assert_eq!(column(&body, "bannedUsers"), [json!(1), json!(0), json!(0)]);
    assert_eq!(column(&body, "lockedUsers"), [json!(0), json!(1), json!(0)]);
    assert_eq!(
        column(&body, "failedVerifications"),
        [json!(0), json!(1), json!(0)]
    );
    assert_eq!(
        column(&body, "revokedSessions"),
        [json!(0), json!(0), json!(2)]
    );
}

#[sqlx::test]
async fn a_bad_range_is_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    for (query, path) in [
        ("from=yesterday", "from"),
        ("from=2026-01-02&to=2026-01-01", "to"),
        ("interval=hour", "interval"),
        ("from=2000-01-01&to=2026-01-01&interval=day", "interval"),
    ] {
        let (status, body) = app.api_get(&format!("/v1/analytics/growth?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["path"], path, "{query}: {body}");
    }
    // The default: the last 30 days, by day.
    let body = analytics(&app, "growth", "").await;
    assert_eq!(body["buckets"].as_array().unwrap().len(), 31);
}

#[sqlx::test]
async fn time_to_graduate_has_a_median_and_a_p90(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    // Three people join on Jan 1 at 10:00 and graduate 1, 2 and 11 days later.
    for (n, graduated) in [
        "2026-01-02T10:00:00Z",
        "2026-01-03T10:00:00Z",
        "2026-01-12T10:00:00Z",
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("w{n}@example.com");
        let mut joined = event(
            "waitlistEntry.created",
            "2026-01-01T10:00:00Z",
            &format!("w{n}"),
        );
        set(&mut joined, "/data/email_address", json!(email));
        set(
            &mut joined,
            "/data/created_at",
            json!(ms("2026-01-01T10:00:00Z")),
        );
        set(
            &mut joined,
            "/data/updated_at",
            json!(ms("2026-01-01T10:00:00Z")),
        );
        let mut user = event("user.created", graduated, &format!("u{n}"));
        set(
            &mut user,
            "/data/email_addresses/0/email_address",
            json!(email),
        );
        deliver_all(&app, &[joined, user]).await;
    }
    let body = analytics(
        &app,
        "waitlist",
        "from=2026-01-01&to=2026-01-15&interval=week",
    )
    .await;
    assert_eq!(body["graduated"], 3);
    assert_eq!(body["medianSecondsToGraduate"], 2.0 * 86_400.0);
    // percentile_cont: 2 days + 0.8 of the 9 days between the second and the third.
    assert_eq!(body["p90SecondsToGraduate"], 794_880.0);
}

/// The indexes the analytics are written for, as their plans in BENCHMARKS.md use them;
/// a migration that drops a column takes the indexes that include it along.
#[sqlx::test]
async fn every_index_the_analytics_read_exists(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    for index in [
        "clerk_events_subject",
        "clerk_events_type_occurred_at_subject",
        "clerk_events_sessions",
        "clerk_events_auth_signals",
        "clerk_event_firsts_kind_first_at",
        "contacts_graduated_at",
        "contacts_waitlist_joined_at",
    ] {
        let exists: bool =
            sqlx::query_scalar("select exists(select 1 from pg_indexes where indexname = $1)")
                .bind(index)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert!(exists, "{index}");
    }
}
