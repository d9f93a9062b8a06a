//! Forwarding to a real ClickHouse server (Debian's 18.16, on loopback): the shipped
//! table (`analytics/clickhouse/clerk_events.sql`) holds each event once after merge
//! through redeliveries, a server killed and started again while events wait, and a
//! batch sent twice; the shipped queries give the figures of `/api/v1/analytics/*`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::clickhouse::{ClickHouse, PASSWORD, USER};
use crate::forward::{crash_after_the_destination_took_everything, drain, outbox};
use crate::helpers::{Delivery, TestApp, fixture, set, spawn_app_with_config};

const TABLE: &str = include_str!("../../analytics/clickhouse/clerk_events.sql");
const EVENTS_BY_TYPE: &str = include_str!("../../analytics/clickhouse/events_by_type.sql");
const ACTIVE_USERS: &str = include_str!("../../analytics/clickhouse/active_users.sql");
const GROWTH: &str = include_str!("../../analytics/clickhouse/growth.sql");
const WAITLIST: &str = include_str!("../../analytics/clickhouse/waitlist.sql");
const GRADUATIONS: &str = include_str!("../../analytics/clickhouse/waitlist_graduations.sql");
const CONVERSION: &str = include_str!("../../analytics/clickhouse/waitlist_conversion.sql");

fn config(clickhouse: &ClickHouse) -> &'static str {
    Box::leak(
        format!(
            "[forward.clickhouse]\nurl = \"{}\"\ntable = \"clerk_events\"\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            clickhouse.url
        )
        .into_boxed_str(),
    )
}

/// The day the test's events start, and how many days they span.
fn first_day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
}
const DAYS: i64 = 9;

/// Sign-ups, sessions and updates spread over `DAYS` days, each delivered twice, all
/// in a shuffled order. Returns how many distinct events were stored.
async fn deliver_events(app: &TestApp) -> usize {
    let mut events = Vec::new();
    for i in 0..12i64 {
        let at = first_day() + Duration::hours(i * 17) + Duration::milliseconds(i * 7);
        let user = format!("user_ch_{i}");
        let mut created = fixture("user.created");
        set(&mut created, "/data/id", json!(user));
        set(
            &mut created,
            "/data/email_addresses/0/email_address",
            json!(format!("c{i}@example.com")),
        );
        set(&mut created, "/timestamp", json!(at.timestamp_millis()));
        events.push(created);
        // Sessions: some users sign in several times, some not at all.
        for s in 0..(i % 4) {
            let mut session = fixture("session.created");
            set(&mut session, "/data/id", json!(format!("sess_{i}_{s}")));
            set(&mut session, "/data/user_id", json!(user));
            let later = at + Duration::hours(20 * s + 3);
            set(&mut session, "/timestamp", json!(later.timestamp_millis()));
            events.push(session);
        }
        // Some leave a day and a half later; one of them Clerk announces twice, under
        // two svix-ids, and a person is counted once.
        if i % 5 == 0 {
            for copy in 0..(1 + i64::from(i == 5)) {
                let mut deleted = fixture("user.deleted");
                set(&mut deleted, "/data/id", json!(user));
                let later = at + Duration::hours(36) + Duration::minutes(copy);
                set(&mut deleted, "/timestamp", json!(later.timestamp_millis()));
                events.push(deleted);
            }
        }
    }
    // The waitlist: entries join, some are invited (one twice, under two svix-ids) or
    // rejected days later. The invited sign up, and their entry completes. Two were
    // users before joining the waitlist: one has not graduated, the other graduates
    // when Clerk completes the entry.
    for (user, address) in [
        ("user_ch_early", "w6@example.com"),
        ("user_ch_early_completed", "w9@example.com"),
    ] {
        let mut early = fixture("user.created");
        set(&mut early, "/data/id", json!(user));
        set(
            &mut early,
            "/data/email_addresses/0/email_address",
            json!(address),
        );
        versioned(&mut early, first_day(), first_day());
        events.push(early);
    }
    for i in 0..10i64 {
        let at = first_day() + Duration::hours(i * 19 + 1);
        let entry = format!("wle_ch_{i}");
        let email = format!("W{i}@example.com");
        let entry_event = |kind: &str, status: &str, version: DateTime<Utc>| {
            let mut event = fixture(kind);
            set(&mut event, "/data/id", json!(entry));
            set(&mut event, "/data/email_address", json!(email));
            set(&mut event, "/data/status", json!(status));
            versioned(&mut event, at, version);
            event
        };
        let mut person = vec![entry_event("waitlistEntry.created", "pending", at)];
        let status = match i % 3 {
            0 => None,
            1 => Some("invited"),
            _ => Some("rejected"),
        };
        for copy in 0..i64::from(status.is_some()) * (1 + i64::from(i == 4)) {
            let later = at + Duration::hours(50) + Duration::minutes(copy);
            person.push(entry_event("waitlistEntry.updated", status.unwrap(), later));
        }
        if status == Some("invited") {
            let signed_up = at + Duration::hours(60) + Duration::minutes(i * 7);
            let mut user = fixture("user.created");
            set(&mut user, "/data/id", json!(format!("user_ch_w{i}")));
            let address = email.to_lowercase();
            set(
                &mut user,
                "/data/email_addresses/0/email_address",
                json!(address),
            );
            versioned(&mut user, signed_up, signed_up);
            person.push(user);
            let completed = signed_up + Duration::seconds(1);
            person.push(entry_event("waitlistEntry.updated", "completed", completed));
        }
        if i == 9 {
            let completed = at + Duration::hours(30);
            person.push(entry_event("waitlistEntry.updated", "completed", completed));
        }
        events.extend(person);
    }
    // Delivered in any order, each twice: Roster's figures and the shipped queries'
    // are those of in-order delivery.
    fastrand::Rng::with_seed(15).shuffle(&mut events);
    for event in &events {
        let delivery = Delivery::of(event);
        for _ in 0..2 {
            assert_eq!(app.send(&delivery).await.status(), 200, "{event}");
        }
    }
    events.len()
}

/// Sets an event's `data.created_at`, `data.updated_at` (its version) and envelope
/// timestamp.
fn versioned(event: &mut Value, created: DateTime<Utc>, version: DateTime<Utc>) {
    set(event, "/data/created_at", json!(created.timestamp_millis()));
    set(event, "/data/updated_at", json!(version.timestamp_millis()));
    set(event, "/timestamp", json!(version.timestamp_millis()));
}

/// A shipped query with its range and bucket filled in.
fn shipped(sql: &str, from: DateTime<Utc>, to: DateTime<Utc>, interval: &str) -> String {
    let bucket = match interval {
        "day" => "toStartOfDay",
        "week" => "toMonday",
        _ => "toStartOfMonth",
    };
    sql.replace("{from_ms}", &from.timestamp_millis().to_string())
        .replace("{to_ms}", &to.timestamp_millis().to_string())
        .replace("{bucket}", bucket)
}

#[sqlx::test]
async fn clickhouse_holds_each_event_once_and_agrees_with_the_analytics_api(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let mut clickhouse = ClickHouse::start().await;
    clickhouse.query(TABLE).await;
    clickhouse.query(GRADUATIONS).await;
    let app = spawn_app_with_config(db, config(&clickhouse)).await;

    // Events arrive while ClickHouse is down: they wait in the outbox.
    clickhouse.kill().await;
    let stored = deliver_events(&app).await;
    assert_eq!(outbox(&app).await, stored as i64);
    app.run_jobs_at(Utc::now() + Duration::seconds(2)).await;
    assert_eq!(
        outbox(&app).await,
        stored as i64,
        "kept while ClickHouse is away"
    );
    // Back on the same port and data, the retries get through.
    clickhouse.resume().await;
    drain(&app).await;
    assert_eq!(outbox(&app).await, 0);
    crash_after_the_destination_took_everything(&app, "clickhouse").await;
    drain(&app).await;
    let count = |sql: &'static str| {
        let clickhouse = &clickhouse;
        async move { clickhouse.query(sql).await.trim().parse::<usize>().unwrap() }
    };
    // Sent twice (a merge may already have folded the copies together).
    let text = crate::monitoring::scrape(&app).await;
    let forwarded = format!(
        "roster_forwarded_events_total{{destination=\"clickhouse\"}} {}",
        2 * stored
    );
    assert!(text.contains(&forwarded), "{text}");
    assert!(text.contains("roster_forward_pending{destination=\"clickhouse\"} 0"));
    // The gauges list the configured destination only (the metrics recorder is the
    // process's, so this asks the query behind them).
    let lags = roster::forward::outbox::lag(&app.db, &["clickhouse".to_owned()])
        .await
        .unwrap();
    let listed: Vec<&str> = lags.iter().map(|l| l.destination.as_str()).collect();
    assert_eq!(listed, ["clickhouse"]);
    assert_eq!(
        count("SELECT count() FROM clerk_events FINAL").await,
        stored
    );
    clickhouse.query("OPTIMIZE TABLE clerk_events FINAL").await;
    assert_eq!(
        count("SELECT count() FROM clerk_events").await,
        stored,
        "once after merge"
    );
    // Three invited who signed up, and the user whose entry Clerk completed.
    assert_eq!(
        count("SELECT count() FROM waitlist_graduations WHERE graduated_ms != 0").await,
        4
    );

    // The shipped queries against the API, by day and by week.
    // By day and week over all of it, and by day from the fourth day on (with users
    // and deletions before the range).
    for (interval, skipped_hours) in [("day", 5), ("week", 5), ("day", 74)] {
        let from = first_day() + Duration::hours(skipped_hours);
        let to = first_day() + Duration::days(DAYS) + Duration::hours(7);
        let query = format!(
            "?from={}&to={}&interval={interval}",
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let (status, events) = app.api_get(&format!("/v1/analytics/events{query}")).await;
        assert_eq!(status, 200, "{events}");
        let range_from: DateTime<Utc> = events["from"].as_str().unwrap().parse().unwrap();
        let mut api: BTreeMap<(String, String), i64> = BTreeMap::new();
        for bucket in events["buckets"].as_array().unwrap() {
            let day = bucket["start"].as_str().unwrap()[..10].to_owned();
            for (event_type, n) in bucket["counts"].as_object().unwrap() {
                if n.as_i64().unwrap() > 0 {
                    api.insert((day.clone(), event_type.clone()), n.as_i64().unwrap());
                }
            }
        }
        let mut shipped_counts = BTreeMap::new();
        for row in clickhouse
            .rows(&shipped(EVENTS_BY_TYPE, range_from, to, interval))
            .await
        {
            let key = (
                row["start"].as_str().unwrap().to_owned(),
                row["event_type"].as_str().unwrap().to_owned(),
            );
            shipped_counts.insert(
                key,
                row["events"]
                    .as_str()
                    .map_or_else(|| row["events"].as_i64().unwrap(), |s| s.parse().unwrap()),
            );
        }
        assert!(!api.is_empty());
        assert_eq!(shipped_counts, api, "events by {interval}");

        let (status, active) = app
            .api_get(&format!("/v1/analytics/active-users{query}"))
            .await;
        assert_eq!(status, 200, "{active}");
        let api: BTreeMap<String, (i64, i64)> = active["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["sessions"].as_i64().unwrap() > 0)
            .map(|b| {
                let day = b["start"].as_str().unwrap()[..10].to_owned();
                (
                    day,
                    (
                        b["activeUsers"].as_i64().unwrap(),
                        b["sessions"].as_i64().unwrap(),
                    ),
                )
            })
            .collect();
        let number = |v: &Value| {
            v.as_str()
                .map_or_else(|| v.as_i64().unwrap(), |s| s.parse().unwrap())
        };
        let shipped_active: BTreeMap<String, (i64, i64)> = clickhouse
            .rows(&shipped(ACTIVE_USERS, range_from, to, interval))
            .await
            .iter()
            .map(|row| {
                let day = row["start"].as_str().unwrap().to_owned();
                (
                    day,
                    (number(&row["active_users"]), number(&row["sessions"])),
                )
            })
            .collect();
        assert!(!api.is_empty());
        assert_eq!(shipped_active, api, "active users by {interval}");

        let (status, growth) = app.api_get(&format!("/v1/analytics/growth{query}")).await;
        assert_eq!(status, 200, "{growth}");
        let fields = [
            "signups",
            "deletions",
            "netGrowth",
            "totalUsers",
            "organizationsCreated",
            "organizationsDeleted",
            "totalOrganizations",
        ];
        let api: BTreeMap<String, (Vec<i64>, Option<f64>)> = growth["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["signups"].as_i64().unwrap() + b["deletions"].as_i64().unwrap() > 0)
            .map(|b| {
                let day = b["start"].as_str().unwrap()[..10].to_owned();
                let figures = fields.iter().map(|f| b[*f].as_i64().unwrap()).collect();
                (day, (figures, b["churnRate"].as_f64()))
            })
            .collect();
        let columns = [
            "signups",
            "deletions",
            "net_growth",
            "total_users",
            "organizations_created",
            "organizations_deleted",
            "total_organizations",
        ];
        let shipped_growth: BTreeMap<String, (Vec<i64>, Option<f64>)> = clickhouse
            .rows(&shipped(GROWTH, range_from, to, interval))
            .await
            .iter()
            .map(|row| {
                let day = row["start"].as_str().unwrap().to_owned();
                let figures = columns.iter().map(|c| number(&row[*c])).collect();
                (day, (figures, row["churn_rate"].as_f64()))
            })
            .collect();
        assert!(
            api.values().any(|(figures, _)| figures[1] > 0),
            "deletions seen"
        );
        assert_eq!(shipped_growth, api, "growth by {interval}");

        let (status, waitlist) = app.api_get(&format!("/v1/analytics/waitlist{query}")).await;
        assert_eq!(status, 200, "{waitlist}");
        let steps = ["joined", "invited", "graduated", "rejected"];
        let api: BTreeMap<String, Vec<i64>> = waitlist["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let day = b["start"].as_str().unwrap()[..10].to_owned();
                (
                    day,
                    steps
                        .iter()
                        .map(|f| b[*f].as_i64().unwrap())
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, figures)| figures.iter().any(|n| *n > 0))
            .collect();
        let shipped_waitlist: BTreeMap<String, Vec<i64>> = clickhouse
            .rows(&shipped(WAITLIST, range_from, to, interval))
            .await
            .iter()
            .map(|row| {
                let day = row["start"].as_str().unwrap().to_owned();
                (day, steps.iter().map(|c| number(&row[*c])).collect())
            })
            .collect();
        let total = |i: usize| api.values().map(|f| f[i]).sum::<i64>();
        assert!(
            total(1) > 0 && total(2) > 0 && total(3) > 0,
            "invited, graduated and rejected seen"
        );
        assert_eq!(shipped_waitlist, api, "waitlist by {interval}");
        let [conversion] = &clickhouse
            .rows(&shipped(CONVERSION, range_from, to, interval))
            .await[..]
        else {
            panic!("one row")
        };
        for (field, column) in [
            ("conversionRate", "conversion_rate"),
            ("medianSecondsToGraduate", "median_seconds_to_graduate"),
            ("p90SecondsToGraduate", "p90_seconds_to_graduate"),
        ] {
            let (api, shipped) = (waitlist[field].as_f64(), conversion[column].as_f64());
            assert!(api.is_some(), "{field} from {range_from}: {waitlist}");
            assert!(
                shipped.zip(api).is_some_and(|(s, a)| (s - a).abs() < 1e-6),
                "{field} from {range_from}: {shipped:?} against {api:?}"
            );
        }
    }
}

/// The SQL of a file without its `--` comments and indentation.
fn statement(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn each_tinybird_pipe_runs_the_tested_clickhouse_query() {
    let bucket = "{% if String(interval, 'day') == 'week' %}toMonday{% elif String(interval, 'day') == 'month' %}toStartOfMonth{% else %}toStartOfDay{% end %}";
    for (pipe, query) in [
        (
            include_str!("../../analytics/tinybird/events_by_type.pipe"),
            EVENTS_BY_TYPE,
        ),
        (
            include_str!("../../analytics/tinybird/active_users.pipe"),
            ACTIVE_USERS,
        ),
        (include_str!("../../analytics/tinybird/growth.pipe"), GROWTH),
        (
            include_str!("../../analytics/tinybird/waitlist.pipe"),
            WAITLIST,
        ),
        (
            include_str!("../../analytics/tinybird/waitlist_conversion.pipe"),
            CONVERSION,
        ),
    ] {
        let sql = pipe
            .split_once("SQL >\n    %\n")
            .and_then(|(_, rest)| rest.split_once("\nTYPE endpoint"))
            .map(|(sql, _)| sql)
            .expect("one SQL node, then TYPE endpoint");
        let as_clickhouse = sql
            .replace("{{Int64(from_ms)}}", "{from_ms}")
            .replace("{{Int64(to_ms)}}", "{to_ms}")
            .replace(bucket, "{bucket}");
        assert_eq!(statement(&as_clickhouse), statement(query));
    }
    // The graduations the waitlist pipes read: a node of each, the view's query.
    let (create, view) = GRADUATIONS.split_once(" AS\n").expect("CREATE VIEW … AS");
    assert!(create.ends_with("CREATE VIEW IF NOT EXISTS waitlist_graduations"));
    for pipe in [
        include_str!("../../analytics/tinybird/waitlist.pipe"),
        include_str!("../../analytics/tinybird/waitlist_conversion.pipe"),
    ] {
        let (_, node) = pipe
            .split_once("NODE waitlist_graduations\n")
            .expect("a waitlist_graduations node");
        let (_, sql) = node.split_once("SQL >\n").expect("its SQL");
        let (sql, _) = sql.split_once("\nNODE ").expect("then the endpoint's node");
        assert_eq!(statement(sql), statement(view));
    }
    // The data source has the table's columns, each read from the line's field.
    let datasource = include_str!("../../analytics/tinybird/clerk_events.datasource");
    let columns: Vec<(&str, &str)> = TABLE
        .lines()
        .skip_while(|line| !line.starts_with("CREATE TABLE"))
        .skip(1)
        .take_while(|line| !line.starts_with(')'))
        .filter(|line| !line.trim_start().starts_with("--"))
        .map(|line| line.trim().trim_end_matches(',').split_once(' ').unwrap())
        .collect();
    assert_eq!(columns.len(), 11, "{columns:?}");
    for (column, kind) in columns {
        let field = format!("`{column}` {kind} `json:$.{column}`");
        assert!(datasource.contains(&field), "{field}");
    }
}
