//! Model-based test of the Clerk sync as a fold: random histories per person (waitlist
//! entry before the sign-up or between its updates, sign-up with the waitlisted
//! address or another, updates, an email move, a deletion), delivered once in event-time
//! order and once shuffled, 20% redelivered and 16 at once, must end in the same
//! contacts, in both delete modes.
//!
//! Each history is delivered twice in one database, under two namespaces (`o` for in
//! order, `s` for shuffled), and the two outcomes are compared with the namespace
//! taken out. CI runs fixed seeds; a longer run:
//!
//!     ROSTER_MODEL_SEEDS=200 scripts/test sync_model
//!

use std::collections::BTreeSet;

use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Delivery, TestApp, spawn_app, spawn_app_with_config};

/// People per seed.
const PEOPLE: usize = 25;

/// One event of a person's history, in a namespace.
#[derive(Clone)]
struct HistoryEvent {
    version: i64,
    body: Value,
}

fn envelope(event_type: &str, at: i64, data: Value) -> Value {
    json!({ "object": "event", "type": event_type, "timestamp": at, "data": data })
}

fn user_data(ns: &str, person: usize, email: &str, names: (&str, &str), at: i64) -> Value {
    json!({
        "id": format!("user_{ns}{person}"),
        "object": "user",
        "first_name": names.0,
        "last_name": names.1,
        "primary_email_address_id": format!("idn_{ns}{person}_{email}"),
        "email_addresses": [{ "id": format!("idn_{ns}{person}_{email}"), "email_address": format!("p{person}{email}@{ns}.test") }],
        "created_at": 1_767_225_600_000i64,
        "updated_at": at,
    })
}

const NAMES: [(&str, &str); 5] = [
    ("Ada", "Lovelace"),
    ("Grace", "Hopper"),
    ("Alan", "Turing"),
    ("Edsger", "Dijkstra"),
    ("Barbara", "Liskov"),
];

/// A random history of `person`, in namespace `ns` (the same for every namespace of
/// one seed: the generator is run again with the same seed).
fn history(rng: &mut fastrand::Rng, ns: &str, person: usize) -> Vec<HistoryEvent> {
    let mut at = 1_767_225_600_000i64 + rng.i64(0..1_000_000);
    let mut events = Vec::new();
    let waitlisted = rng.bool();
    // Most join the waitlist before they sign up (and graduate); some join it after,
    // with the address they signed up with (and do not graduate).
    let joins_late = waitlisted && rng.u8(0..4) == 0;
    let join_waitlist = |rng: &mut fastrand::Rng, at: &mut i64, events: &mut Vec<HistoryEvent>| {
        let joined = step(rng, at);
        let entry = |status: &str, updated: i64| {
            json!({
                "id": format!("wle_{ns}{person}"), "object": "waitlist_entry",
                "email_address": format!("p{person}a@{ns}.test"), "status": status,
                "created_at": joined, "updated_at": updated,
            })
        };
        events.push(HistoryEvent {
            version: joined,
            body: envelope("waitlistEntry.created", joined, entry("pending", joined)),
        });
        if rng.bool() {
            let invited = step(rng, at);
            events.push(HistoryEvent {
                version: invited,
                body: envelope("waitlistEntry.updated", invited, entry("invited", invited)),
            });
        }
    };
    if waitlisted && !joins_late {
        join_waitlist(rng, &mut at, &mut events);
    }
    // Most sign up with the waitlisted address; some with another, moving onto it later
    // (and do not graduate: in order, that is a merge).
    let mut email = if waitlisted && !joins_late && rng.u8(0..5) == 0 {
        "c"
    } else {
        "a"
    };
    let created = step(rng, &mut at);
    let names = NAMES[rng.usize(0..NAMES.len())];
    events.push(HistoryEvent {
        version: created,
        body: envelope(
            "user.created",
            created,
            user_data(ns, person, email, names, created),
        ),
    });
    let updates = rng.usize(0..4);
    // Those who join late join after this many of the updates.
    let join_after = rng.usize(0..=updates);
    for update in 0..updates {
        if joins_late && update == join_after {
            join_waitlist(rng, &mut at, &mut events);
        }
        let updated = step(rng, &mut at);
        // A move to a new address. (Not for those who join the waitlist later: a move
        // before the entry joins, delivered after it, is not undone; see the README.)
        if email == "c" {
            email = "a";
        } else if email == "a" && !joins_late && rng.u8(0..4) == 0 {
            email = "b";
        }
        let names = NAMES[rng.usize(0..NAMES.len())];
        events.push(HistoryEvent {
            version: updated,
            body: envelope(
                "user.updated",
                updated,
                user_data(ns, person, email, names, updated),
            ),
        });
    }
    if joins_late && join_after == updates {
        join_waitlist(rng, &mut at, &mut events);
    }
    if rng.bool() {
        let deleted = step(rng, &mut at);
        let data = json!({ "id": format!("user_{ns}{person}"), "object": "user", "deleted": true });
        events.push(HistoryEvent {
            version: deleted,
            body: envelope("user.deleted", deleted, data),
        });
    }
    events
}

/// A moment a little after `at`, which it becomes.
fn step(rng: &mut fastrand::Rng, at: &mut i64) -> i64 {
    *at += rng.i64(1..5_000);
    *at
}

/// Delivers until the answer is 200, as Svix retries a 503.
async fn deliver_until_accepted(app: &TestApp, delivery: &Delivery) {
    for _ in 0..50 {
        let response = app.send(delivery).await;
        match response.status().as_u16() {
            200 => return,
            503 => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            status => panic!("{status}: {}", response.text().await.unwrap_or_default()),
        }
    }
    panic!("never accepted");
}

/// What is compared of a contact: email, names, user ID, subscribed, waitlist entry
/// and status, and when it graduated.
type ContactRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    Option<String>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// Every contact of namespace `ns`, with the namespace taken out, in a stable order.
async fn outcome(app: &TestApp, ns: &str) -> BTreeSet<String> {
    let rows: Vec<ContactRow> =
        sqlx::query_as(
            "select email, first_name, last_name, user_id, subscribed, waitlist_entry_id, waitlist_status,
                    graduated_at
             from contacts where email like '%@' || $1 || '.test'",
        )
        .bind(ns)
        .fetch_all(&app.db)
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| {
            format!("{row:?}")
                .replace(&format!("@{ns}.test"), "@ns.test")
                .replace(&format!("user_{ns}"), "user_")
                .replace(&format!("wle_{ns}"), "wle_")
        })
        .collect()
}

async fn check_seed(app: &TestApp, seed: u64) {
    let (in_order_ns, shuffled_ns) = (format!("o{seed}x"), format!("s{seed}x"));
    // In event-time order, one at a time.
    let mut rng = fastrand::Rng::with_seed(seed);
    for person in 0..PEOPLE {
        let mut events = history(&mut rng, &in_order_ns, person);
        events.sort_by_key(|e| e.version);
        for event in events {
            deliver_until_accepted(app, &Delivery::of(&event.body)).await;
        }
    }
    // The same histories shuffled, 20% delivered twice, 16 at once.
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut delivery_rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let mut deliveries = Vec::new();
    for person in 0..PEOPLE {
        for event in history(&mut rng, &shuffled_ns, person) {
            let delivery = Delivery::of(&event.body);
            if delivery_rng.u8(0..5) == 0 {
                deliveries.push(Delivery {
                    body: delivery.body.clone(),
                    id: delivery.id.clone(),
                    timestamp: delivery.timestamp,
                    secret: delivery.secret,
                    header_prefix: delivery.header_prefix,
                    signature: None,
                });
            }
            deliveries.push(delivery);
        }
    }
    delivery_rng.shuffle(&mut deliveries);
    futures::stream::iter(deliveries.iter())
        .for_each_concurrent(16, |delivery| deliver_until_accepted(app, delivery))
        .await;

    let (expected, got) = (
        outcome(app, &in_order_ns).await,
        outcome(app, &shuffled_ns).await,
    );
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "seed {seed}: in order but not shuffled: {missing:#?}\nshuffled but not in order: {extra:#?}"
    );
}

fn seeds() -> Vec<u64> {
    let count = std::env::var("ROSTER_MODEL_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3u64);
    (1..=count).collect()
}

#[sqlx::test]
async fn shuffled_redelivered_concurrent_histories_end_as_in_order_unsubscribe_mode(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    for seed in seeds() {
        check_seed(&app, seed).await;
    }
}

#[sqlx::test]
async fn shuffled_redelivered_concurrent_histories_end_as_in_order_delete_mode(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with_config(db, "[clerk.user_deleted]\naction = \"delete\"\n").await;
    for seed in seeds() {
        check_seed(&app, seed).await;
    }
}
