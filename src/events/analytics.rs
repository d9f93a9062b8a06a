//! Lifecycle analytics computed in PostgreSQL from the raw event log (the Tinybird use
//! cases): growth, churn, the waitlist funnel, events by type, active users and auth
//! health, per day, week or month in UTC, with empty buckets filled with zeros.
//!
//! The log holds each Clerk delivery once (by `svix-id`); counts of people are of
//! distinct subjects (`clerk_events.subject_id`, `clerk_event_firsts`), so an event
//! Clerk sent twice under two IDs still counts once. Buckets are cut in Rust and each
//! query counts per `[start, end)` with index range scans.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::range::{Interval, Range};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrowthBucket {
    pub start: DateTime<Utc>,
    pub signups: i64,
    pub deletions: i64,
    pub net_growth: i64,
    /// Users at the end of the bucket: those created before it, less those deleted.
    pub total_users: i64,
    /// Deletions over the users at the bucket's start; null when there were none.
    pub churn_rate: Option<f64>,
    pub organizations_created: i64,
    pub organizations_deleted: i64,
    pub total_organizations: i64,
}

/// Per bucket, how many people or organizations reached each of `kinds` for the first
/// time (`clerk_event_firsts`), in the order of `kinds`.
async fn firsts_per_bucket(
    conn: &mut PgConnection,
    range: &Range,
    kinds: &[&str],
) -> sqlx::Result<Vec<Vec<i64>>> {
    let (starts, ends) = range.bounds();
    let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    let rows = sqlx::query!(
        r#"select b.i as "bucket!", k.j as "kind!",
                  (select count(*) from clerk_event_firsts f
                    where f.kind = k.kind and f.first_at >= b.start and f.first_at < b.stop) as "count!"
           from unnest($1::timestamptz[], $2::timestamptz[]) with ordinality as b(start, stop, i)
           cross join unnest($3::text[]) with ordinality as k(kind, j)"#,
        &starts,
        &ends,
        &kinds
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut counts = vec![vec![0; kinds.len()]; starts.len()];
    for row in rows {
        counts[usize::try_from(row.bucket - 1).unwrap_or(0)]
            [usize::try_from(row.kind - 1).unwrap_or(0)] = row.count;
    }
    Ok(counts)
}

/// How many reached each of `kinds` before `at`.
async fn firsts_before(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    kinds: &[&str],
) -> sqlx::Result<Vec<i64>> {
    let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    sqlx::query_scalar!(
        r#"select (select count(*) from clerk_event_firsts f where f.kind = k.kind and f.first_at < $2) as "count!"
           from unnest($1::text[]) with ordinality as k(kind, i)
           order by k.i"#,
        &kinds,
        at
    )
    .fetch_all(conn)
    .await
}

const GROWTH_KINDS: [&str; 4] = [
    "user.created",
    "user.deleted",
    "organization.created",
    "organization.deleted",
];

/// Sign-ups, deletions, net growth, running totals and churn of users (and
/// organizations) per bucket.
pub async fn growth(conn: &mut PgConnection, range: &Range) -> sqlx::Result<Vec<GrowthBucket>> {
    let before = firsts_before(conn, range.from, &GROWTH_KINDS).await?;
    let counts = firsts_per_bucket(conn, range, &GROWTH_KINDS).await?;
    let mut users = before[0] - before[1];
    let mut organizations = before[2] - before[3];
    let buckets = range
        .buckets
        .iter()
        .zip(counts)
        .map(|(start, counts)| {
            let [signups, deletions, orgs_created, orgs_deleted] = counts[..] else {
                unreachable!("four kinds")
            };
            let at_start = users;
            users += signups - deletions;
            organizations += orgs_created - orgs_deleted;
            GrowthBucket {
                start: *start,
                signups,
                deletions,
                net_growth: signups - deletions,
                total_users: users,
                churn_rate: (at_start > 0).then(|| deletions as f64 / at_start as f64),
                organizations_created: orgs_created,
                organizations_deleted: orgs_deleted,
                total_organizations: organizations,
            }
        })
        .collect();
    Ok(buckets)
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunnelBucket {
    pub start: DateTime<Utc>,
    pub joined: i64,
    pub invited: i64,
    pub graduated: i64,
    pub rejected: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistFunnel {
    pub buckets: Vec<FunnelBucket>,
    pub joined: i64,
    pub invited: i64,
    pub graduated: i64,
    pub rejected: i64,
    /// Of the contacts that joined the waitlist in the range, the share that has
    /// graduated since; null when none joined.
    pub conversion_rate: Option<f64>,
    /// Time from joining to graduating of the contacts that graduated in the range.
    pub median_seconds_to_graduate: Option<f64>,
    pub p90_seconds_to_graduate: Option<f64>,
}

const FUNNEL_KINDS: [&str; 3] = [
    "waitlistEntry.created",
    "waitlistEntry.invited",
    "waitlistEntry.rejected",
];

/// Joined (`waitlistEntry.created`), invited and rejected (an entry update to that
/// status), graduated (a waitlist contact that became a user) per bucket, with the
/// conversion rate and the time it takes.
pub async fn waitlist_funnel(
    conn: &mut PgConnection,
    range: &Range,
) -> sqlx::Result<WaitlistFunnel> {
    let steps = firsts_per_bucket(conn, range, &FUNNEL_KINDS).await?;
    let (starts, ends) = range.bounds();
    let graduated = sqlx::query_scalar!(
        r#"select (select count(*) from contacts c
                    where c.graduated_at >= b.start and c.graduated_at < b.stop) as "count!"
           from unnest($1::timestamptz[], $2::timestamptz[]) with ordinality as b(start, stop, i)
           order by b.i"#,
        &starts,
        &ends
    )
    .fetch_all(&mut *conn)
    .await?;
    let buckets: Vec<FunnelBucket> = range
        .buckets
        .iter()
        .zip(steps)
        .zip(graduated)
        .map(|((start, steps), graduated)| FunnelBucket {
            start: *start,
            joined: steps[0],
            invited: steps[1],
            rejected: steps[2],
            graduated,
        })
        .collect();
    let summary = sqlx::query!(
        r#"select
             count(*) as "cohort!",
             count(*) filter (where graduated_at is not null) as "cohort_graduated!",
             (select percentile_cont(array[0.5, 0.9]) within group
                       (order by extract(epoch from graduated_at - waitlist_joined_at))
                from contacts where graduated_at >= $1 and graduated_at < $2
                 and waitlist_joined_at is not null) as percentiles
           from contacts
           where waitlist_joined_at >= $1 and waitlist_joined_at < $2"#,
        range.from,
        range.to
    )
    .fetch_one(&mut *conn)
    .await?;
    let percentiles = summary.percentiles.unwrap_or_default();
    let total = |f: fn(&FunnelBucket) -> i64| buckets.iter().map(f).sum::<i64>();
    Ok(WaitlistFunnel {
        joined: total(|b| b.joined),
        invited: total(|b| b.invited),
        graduated: total(|b| b.graduated),
        rejected: total(|b| b.rejected),
        conversion_rate: (summary.cohort > 0)
            .then(|| summary.cohort_graduated as f64 / summary.cohort as f64),
        median_seconds_to_graduate: percentiles.first().copied(),
        p90_seconds_to_graduate: percentiles.get(1).copied(),
        buckets,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCounts {
    /// Every type seen in the range, sorted.
    pub types: Vec<String>,
    pub buckets: Vec<EventCountBucket>,
}

#[derive(Debug, Serialize)]
pub struct EventCountBucket {
    pub start: DateTime<Utc>,
    /// A count for every type of `types`, zero included.
    pub counts: BTreeMap<String, i64>,
}

/// Clerk events per type per bucket: whole UTC days from the daily counts, and the
/// part of the last day before `to` (when `to` is not a midnight) from the log.
pub async fn event_counts(conn: &mut PgConnection, range: &Range) -> sqlx::Result<EventCounts> {
    let (starts, ends) = range.bounds();
    let days = |at: &DateTime<Utc>| at.date_naive();
    let whole_day_ends: Vec<NaiveDate> = ends.iter().map(days).collect();
    let rows = sqlx::query!(
        r#"select b.i as "bucket!", c.event_type as "event_type!", sum(c.events)::bigint as "count!"
           from unnest($1::date[], $2::date[]) with ordinality as b(start, stop, i)
           join clerk_event_counts c on c.day >= b.start and c.day < b.stop
           group by 1, 2"#,
        &starts.iter().map(days).collect::<Vec<_>>(),
        &whole_day_ends,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut counts: Vec<(usize, String, i64)> = rows
        .into_iter()
        .map(|r| {
            (
                usize::try_from(r.bucket - 1).unwrap_or(0),
                r.event_type,
                r.count,
            )
        })
        .collect();
    let tail_start = Interval::Day.floor(range.to);
    if tail_start < range.to {
        let tail = sqlx::query!(
            r#"select event_type, count(*) as "count!" from clerk_events
               where occurred_at >= $1 and occurred_at < $2 group by 1"#,
            tail_start,
            range.to
        )
        .fetch_all(&mut *conn)
        .await?;
        let last = range.buckets.len() - 1;
        counts.extend(tail.into_iter().map(|r| (last, r.event_type, r.count)));
    }
    let zeros: BTreeMap<String, i64> = counts.iter().map(|(_, t, _)| (t.clone(), 0)).collect();
    let mut buckets: Vec<EventCountBucket> = range
        .buckets
        .iter()
        .map(|start| EventCountBucket {
            start: *start,
            counts: zeros.clone(),
        })
        .collect();
    for (bucket, event_type, count) in counts {
        if let Some(total) = buckets
            .get_mut(bucket)
            .and_then(|b| b.counts.get_mut(&event_type))
        {
            *total += count;
        }
    }
    Ok(EventCounts {
        types: zeros.into_keys().collect(),
        buckets,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveUsersBucket {
    pub start: DateTime<Utc>,
    /// Distinct users with a `session.created` in the bucket.
    pub active_users: i64,
    pub sessions: i64,
}

pub async fn active_users(
    conn: &mut PgConnection,
    range: &Range,
) -> sqlx::Result<Vec<ActiveUsersBucket>> {
    let (starts, ends) = range.bounds();
    let rows = sqlx::query!(
        r#"select s.users as "users!", s.sessions::bigint as "sessions!"
           from unnest($1::timestamptz[], $2::timestamptz[]) with ordinality as b(start, stop, i)
           cross join lateral (
               select count(*) as users, coalesce(sum(n), 0) as sessions
               from (select subject_id, count(*) as n from clerk_events
                     where event_type = 'session.created' and occurred_at >= b.start and occurred_at < b.stop
                     group by subject_id) as per_user
           ) s
           order by b.i"#,
        &starts,
        &ends
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(range
        .buckets
        .iter()
        .zip(rows)
        .map(|(start, row)| ActiveUsersBucket {
            start: *start,
            active_users: row.users,
            sessions: row.sessions,
        })
        .collect())
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthHealthBucket {
    pub start: DateTime<Utc>,
    /// Distinct users an update showed banned.
    pub banned_users: i64,
    /// Distinct users an update showed locked (too many failed sign-in attempts).
    pub locked_users: i64,
    /// Distinct users an update showed with an address whose verification failed or
    /// expired.
    pub failed_verifications: i64,
    /// `session.revoked` events.
    pub revoked_sessions: i64,
}

/// The auth health signals Clerk's events carry, per bucket.
pub async fn auth_health(
    conn: &mut PgConnection,
    range: &Range,
) -> sqlx::Result<Vec<AuthHealthBucket>> {
    let (starts, ends) = range.bounds();
    // The predicate repeats the partial index `clerk_events_auth_signals` word for word,
    // so the planner reads only the flagged updates.
    let rows = sqlx::query!(
        r#"select f.banned as "banned!", f.locked as "locked!", f.failed as "failed!",
                  (select count(*) from clerk_events e
                    where e.event_type = 'session.revoked'
                      and e.occurred_at >= b.start and e.occurred_at < b.stop) as "revoked!"
           from unnest($1::timestamptz[], $2::timestamptz[]) with ordinality as b(start, stop, i)
           cross join lateral (
               select count(distinct subject_id) filter (where payload #>> '{data,banned}' = 'true') as banned,
                      count(distinct subject_id) filter (where payload #>> '{data,locked}' = 'true') as locked,
                      count(distinct subject_id) filter (where jsonb_path_exists(payload, '$.data.email_addresses[*].verification.status ? (@ == "failed" || @ == "expired")')) as failed
               from clerk_events
               where event_type = 'user.updated'
                 and (payload #>> '{data,banned}' = 'true'
                      or payload #>> '{data,locked}' = 'true'
                      or jsonb_path_exists(payload, '$.data.email_addresses[*].verification.status ? (@ == "failed" || @ == "expired")'))
                 and occurred_at >= b.start and occurred_at < b.stop
           ) f
           order by b.i"#,
        &starts,
        &ends
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(range
        .buckets
        .iter()
        .zip(rows)
        .map(|(start, row)| AuthHealthBucket {
            start: *start,
            banned_users: row.banned,
            locked_users: row.locked,
            failed_verifications: row.failed,
            revoked_sessions: row.revoked,
        })
        .collect())
}
