//! Lifecycle analytics computed in PostgreSQL from the raw event log (the Tinybird use
//! cases): growth, churn, the waitlist funnel, events by type, active users and auth
//! health, per day, week or month in UTC, with empty buckets filled with zeros.
//!
//! The log holds each Clerk delivery once (by `svix-id`); counts of people are of
//! distinct subjects (`clerk_events.subject_id`), so an event Clerk sent twice under
//! two IDs still counts once.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use sqlx::PgConnection;

/// The width of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }

    /// The unit as PostgreSQL's `date_trunc` names it.
    fn unit(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The start of the bucket holding `at`: midnight, Monday midnight (ISO weeks, as
    /// `date_trunc`), or the first of the month, in UTC.
    pub fn floor(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let date = at.date_naive();
        let start = match self {
            Self::Day => date,
            Self::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
            Self::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap_or(date),
        };
        Utc.from_utc_datetime(&start.and_time(chrono::NaiveTime::MIN))
    }

    fn next(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Day => start + Days::new(1),
            Self::Week => start + Days::new(7),
            Self::Month => start + Months::new(1),
        }
    }
}

/// A time range cut into buckets: from the start of the bucket holding `from` up to
/// `to` (exclusive).
#[derive(Debug, Clone, Serialize)]
pub struct Range {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Interval,
    #[serde(skip)]
    pub buckets: Vec<DateTime<Utc>>,
}

/// Most buckets one query may ask for.
pub const MAX_BUCKETS: usize = 1000;

impl Range {
    /// `None` when `to` is not after `from` or there would be more than `MAX_BUCKETS`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, interval: Interval) -> Option<Self> {
        if to <= from {
            return None;
        }
        let from = interval.floor(from);
        let mut buckets = Vec::new();
        let mut start = from;
        while start < to {
            if buckets.len() == MAX_BUCKETS {
                return None;
            }
            buckets.push(start);
            start = interval.next(start);
        }
        Some(Self {
            from,
            to,
            interval,
            buckets,
        })
    }

    /// One value per bucket, zero where `values` has none.
    fn fill<T: Default + Clone>(&self, values: &HashMap<DateTime<Utc>, T>) -> Vec<T> {
        self.buckets
            .iter()
            .map(|b| values.get(b).cloned().unwrap_or_default())
            .collect()
    }
}

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

/// Sign-ups, deletions, net growth, running totals and churn of users (and
/// organizations) per bucket.
pub async fn growth(conn: &mut PgConnection, range: &Range) -> sqlx::Result<Vec<GrowthBucket>> {
    let before = sqlx::query!(
        r#"select
             count(distinct subject_id) filter (where event_type = 'user.created') as "users_created!",
             count(distinct subject_id) filter (where event_type = 'user.deleted') as "users_deleted!",
             count(distinct subject_id) filter (where event_type = 'organization.created') as "orgs_created!",
             count(distinct subject_id) filter (where event_type = 'organization.deleted') as "orgs_deleted!"
           from clerk_events
           where event_type in ('user.created', 'user.deleted', 'organization.created', 'organization.deleted')
             and occurred_at < $1"#,
        range.from
    )
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query!(
        r#"with firsts as (
               select event_type, subject_id, min(occurred_at) as at
               from clerk_events
               where event_type in ('user.created', 'user.deleted', 'organization.created', 'organization.deleted')
                 and occurred_at >= $1 and occurred_at < $2
               group by event_type, subject_id
           )
           select date_trunc($3, at, 'UTC') as "bucket!",
                  count(*) filter (where event_type = 'user.created') as "signups!",
                  count(*) filter (where event_type = 'user.deleted') as "deletions!",
                  count(*) filter (where event_type = 'organization.created') as "orgs_created!",
                  count(*) filter (where event_type = 'organization.deleted') as "orgs_deleted!"
           from firsts group by 1"#,
        range.from,
        range.to,
        range.interval.unit()
    )
    .fetch_all(&mut *conn)
    .await?;
    let counts: HashMap<_, _> = rows
        .into_iter()
        .map(|r| {
            (
                r.bucket,
                [r.signups, r.deletions, r.orgs_created, r.orgs_deleted],
            )
        })
        .collect();
    let mut users = before.users_created - before.users_deleted;
    let mut organizations = before.orgs_created - before.orgs_deleted;
    let buckets = range
        .buckets
        .iter()
        .zip(range.fill(&counts))
        .map(
            |(start, [signups, deletions, orgs_created, orgs_deleted])| {
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
            },
        )
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

/// Joined (`waitlistEntry.created`), invited and rejected (an entry update to that
/// status), graduated (a waitlist contact that became a user) per bucket, with the
/// conversion rate and the time it takes.
pub async fn waitlist_funnel(
    conn: &mut PgConnection,
    range: &Range,
) -> sqlx::Result<WaitlistFunnel> {
    let steps = sqlx::query!(
        r#"with firsts as (
               select case when event_type = 'waitlistEntry.created' then 'joined'
                           else payload #>> '{data,status}' end as step,
                      subject_id, min(occurred_at) as at
               from clerk_events
               where occurred_at >= $1 and occurred_at < $2
                 and (event_type = 'waitlistEntry.created'
                      or (event_type = 'waitlistEntry.updated'
                          and payload #>> '{data,status}' in ('invited', 'rejected')))
               group by 1, 2
           )
           select date_trunc($3, at, 'UTC') as "bucket!", step as "step!", count(*) as "count!"
           from firsts group by 1, 2"#,
        range.from,
        range.to,
        range.interval.unit()
    )
    .fetch_all(&mut *conn)
    .await?;
    let graduated = sqlx::query!(
        r#"select date_trunc($3, graduated_at, 'UTC') as "bucket!", count(*) as "count!"
           from contacts where graduated_at >= $1 and graduated_at < $2 group by 1"#,
        range.from,
        range.to,
        range.interval.unit()
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut by_bucket: HashMap<DateTime<Utc>, FunnelBucket> = HashMap::new();
    for row in steps {
        let bucket = by_bucket.entry(row.bucket).or_default();
        match row.step.as_str() {
            "joined" => bucket.joined = row.count,
            "invited" => bucket.invited = row.count,
            _ => bucket.rejected = row.count,
        }
    }
    for row in graduated {
        by_bucket.entry(row.bucket).or_default().graduated = row.count;
    }
    let buckets: Vec<FunnelBucket> = range
        .buckets
        .iter()
        .zip(range.fill(&by_bucket))
        .map(|(start, bucket)| FunnelBucket {
            start: *start,
            ..bucket
        })
        .collect();
    let summary = sqlx::query!(
        r#"select
             (select count(*) from contacts
               where waitlist_joined_at >= $1 and waitlist_joined_at < $2) as "cohort!",
             (select count(*) from contacts
               where waitlist_joined_at >= $1 and waitlist_joined_at < $2
                 and graduated_at is not null) as "cohort_graduated!",
             (select percentile_cont(0.5) within group
                       (order by extract(epoch from graduated_at - waitlist_joined_at))
                from contacts where graduated_at >= $1 and graduated_at < $2
                 and waitlist_joined_at is not null) as median,
             (select percentile_cont(0.9) within group
                       (order by extract(epoch from graduated_at - waitlist_joined_at))
                from contacts where graduated_at >= $1 and graduated_at < $2
                 and waitlist_joined_at is not null) as p90"#,
        range.from,
        range.to
    )
    .fetch_one(&mut *conn)
    .await?;
    let total = |f: fn(&FunnelBucket) -> i64| buckets.iter().map(f).sum::<i64>();
    Ok(WaitlistFunnel {
        joined: total(|b| b.joined),
        invited: total(|b| b.invited),
        graduated: total(|b| b.graduated),
        rejected: total(|b| b.rejected),
        conversion_rate: (summary.cohort > 0)
            .then(|| summary.cohort_graduated as f64 / summary.cohort as f64),
        median_seconds_to_graduate: summary.median,
        p90_seconds_to_graduate: summary.p90,
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

/// Clerk events per type per bucket.
pub async fn event_counts(conn: &mut PgConnection, range: &Range) -> sqlx::Result<EventCounts> {
    let rows = sqlx::query!(
        r#"select date_trunc($3, occurred_at, 'UTC') as "bucket!", event_type, count(*) as "count!"
           from clerk_events where occurred_at >= $1 and occurred_at < $2
           group by 1, 2"#,
        range.from,
        range.to,
        range.interval.unit()
    )
    .fetch_all(&mut *conn)
    .await?;
    let zeros: BTreeMap<String, i64> = rows.iter().map(|r| (r.event_type.clone(), 0)).collect();
    let mut by_bucket: HashMap<DateTime<Utc>, BTreeMap<String, i64>> = HashMap::new();
    for row in rows {
        by_bucket
            .entry(row.bucket)
            .or_insert_with(|| zeros.clone())
            .insert(row.event_type, row.count);
    }
    let buckets = range
        .buckets
        .iter()
        .map(|start| EventCountBucket {
            start: *start,
            counts: by_bucket
                .get(start)
                .cloned()
                .unwrap_or_else(|| zeros.clone()),
        })
        .collect();
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
    let rows = sqlx::query!(
        r#"select date_trunc($3, occurred_at, 'UTC') as "bucket!",
                  count(distinct subject_id) as "users!", count(*) as "sessions!"
           from clerk_events
           where event_type = 'session.created' and occurred_at >= $1 and occurred_at < $2
           group by 1"#,
        range.from,
        range.to,
        range.interval.unit()
    )
    .fetch_all(&mut *conn)
    .await?;
    let counts: HashMap<_, _> = rows
        .into_iter()
        .map(|r| (r.bucket, (r.users, r.sessions)))
        .collect();
    Ok(range
        .buckets
        .iter()
        .zip(range.fill(&counts))
        .map(|(start, (active_users, sessions))| ActiveUsersBucket {
            start: *start,
            active_users,
            sessions,
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
    // The predicate repeats the partial index `clerk_events_auth_signals` word for word,
    // so the planner reads only the flagged updates.
    let flagged = sqlx::query!(
        r#"select date_trunc($3, occurred_at, 'UTC') as "bucket!",
                  count(distinct subject_id) filter (where payload #>> '{data,banned}' = 'true') as "banned!",
                  count(distinct subject_id) filter (where payload #>> '{data,locked}' = 'true') as "locked!",
                  count(distinct subject_id) filter (where jsonb_path_exists(payload, '$.data.email_addresses[*].verification.status ? (@ == "failed" || @ == "expired")')) as "failed!"
           from clerk_events
           where event_type = 'user.updated'
             and (payload #>> '{data,banned}' = 'true'
                  or payload #>> '{data,locked}' = 'true'
                  or jsonb_path_exists(payload, '$.data.email_addresses[*].verification.status ? (@ == "failed" || @ == "expired")'))
             and occurred_at >= $1 and occurred_at < $2
           group by 1"#,
        range.from,
        range.to,
        range.interval.unit()
    )
    .fetch_all(&mut *conn)
    .await?;
    let revoked = sqlx::query!(
        r#"select date_trunc($3, occurred_at, 'UTC') as "bucket!", count(*) as "count!"
           from clerk_events
           where event_type = 'session.revoked' and occurred_at >= $1 and occurred_at < $2
           group by 1"#,
        range.from,
        range.to,
        range.interval.unit()
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut by_bucket: HashMap<DateTime<Utc>, AuthHealthBucket> = HashMap::new();
    for row in flagged {
        let bucket = by_bucket.entry(row.bucket).or_default();
        bucket.banned_users = row.banned;
        bucket.locked_users = row.locked;
        bucket.failed_verifications = row.failed;
    }
    for row in revoked {
        by_bucket.entry(row.bucket).or_default().revoked_sessions = row.count;
    }
    Ok(range
        .buckets
        .iter()
        .zip(range.fill(&by_bucket))
        .map(|(start, bucket)| AuthHealthBucket {
            start: *start,
            ..bucket
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn buckets_start_at_utc_midnight_monday_and_the_first() {
        let t = at("2026-03-18T15:04:05Z"); // a Wednesday
        assert_eq!(Interval::Day.floor(t), at("2026-03-18T00:00:00Z"));
        assert_eq!(Interval::Week.floor(t), at("2026-03-16T00:00:00Z"));
        assert_eq!(Interval::Month.floor(t), at("2026-03-01T00:00:00Z"));
    }

    #[test]
    fn a_range_covers_from_the_first_bucket_up_to_the_end() {
        let range = Range::new(
            at("2026-01-30T12:00:00Z"),
            at("2026-03-01T00:00:00Z"),
            Interval::Month,
        )
        .unwrap();
        assert_eq!(
            range.buckets,
            vec![at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z")]
        );
        let days = Range::new(
            at("2026-01-01T00:00:00Z"),
            at("2026-01-03T00:00:00.000001Z"),
            Interval::Day,
        )
        .unwrap();
        assert_eq!(days.buckets.len(), 3);
        assert!(
            Range::new(
                at("2026-01-02T00:00:00Z"),
                at("2026-01-01T00:00:00Z"),
                Interval::Day
            )
            .is_none()
        );
        assert!(
            Range::new(
                at("2000-01-01T00:00:00Z"),
                at("2026-01-01T00:00:00Z"),
                Interval::Day
            )
            .is_none()
        );
    }
}
