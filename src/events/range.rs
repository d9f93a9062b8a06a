//! The time range of an analytics query: from the start of the bucket holding `from`
//! up to `to`, cut into days, ISO weeks or months in UTC; and the one read snapshot the
//! figures of a query come from.

use chrono::{DateTime, Datelike, Days, Duration, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, Transaction};

use crate::input::{Invalid, parse_time};

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
}

impl Range {
    /// The buckets' starts and ends, as the queries take them: each query counts per
    /// `[start, end)` pair with index range scans, so no row is bucketed one by one.
    pub fn bounds(&self) -> (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) {
        let ends = self
            .buckets
            .iter()
            .skip(1)
            .copied()
            .chain(std::iter::once(self.to))
            .collect();
        (self.buckets.clone(), ends)
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct RangeQuery {
    /// Start (inclusive), rounded down to its bucket's start.
    pub from: Option<String>,
    /// End (exclusive); default now.
    pub to: Option<String>,
    /// day, week (ISO, from Monday) or month.
    pub interval: Option<String>,
}

impl RangeQuery {
    /// The range asked for: by default the last 30 days, by day.
    pub fn range(&self) -> Result<Range, Invalid> {
        let to = match &self.to {
            Some(to) => parse_time("to", to)?,
            None => Utc::now(),
        };
        let from = match &self.from {
            Some(from) => parse_time("from", from)?,
            None => to - Duration::days(30),
        };
        let interval = match self.interval.as_deref() {
            None => Interval::Day,
            Some(text) => Interval::parse(text).ok_or_else(|| {
                Invalid::field("interval", "`interval` must be day, week or month.")
            })?,
        };
        if to <= from {
            return Err(Invalid::field("to", "`to` must be after `from`."));
        }
        Range::new(from, to, interval).ok_or_else(|| {
            Invalid::field(
                "interval",
                format!("The range holds more than {MAX_BUCKETS} buckets; use a longer interval."),
            )
        })
    }
}

/// A read-only transaction that sees one snapshot, so running totals and buckets agree
/// while events keep arriving.
pub async fn snapshot(pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query!("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
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
