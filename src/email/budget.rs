//! The send budget (`[sending] rate`), held in the database so that it holds across
//! replicas. Sends are spaced evenly: each takes the next free slot, at or after now,
//! and moves it one interval on. The database's clock times it, so replicas whose
//! clocks disagree still share one schedule.
//!
//! A send may take a slot only if it comes soon enough: within `URGENT_HORIZON` for
//! workflow and transactional email, within `BULK_HORIZON` for a campaign's. So a
//! broadcast only ever holds the next moment's slots, and email that is not bulk gets
//! the one after them.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

use crate::config::sending::SendRate;
use crate::jobs::{BulkRoom, Deferred};

/// How far ahead a workflow or transactional send may take its slot (and sleep until
/// it); past that, its job waits in the queue.
pub const URGENT_HORIZON: Duration = Duration::from_secs(10);
/// How far ahead a campaign's send may take its slot.
pub const BULK_HORIZON: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
pub struct SendBudget {
    interval: Duration,
}

/// What asking for a slot gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Taken: send after this wait.
    Taken(Duration),
    /// None soon enough; ask again after this wait.
    Full(Duration),
}

impl SendBudget {
    pub fn new(rate: SendRate) -> Self {
        Self {
            interval: rate.interval(),
        }
    }

    /// Takes the next slot if it comes within `horizon`.
    pub async fn take(&self, pool: &PgPool, horizon: Duration) -> sqlx::Result<Slot> {
        // The commit is not waited for: a database crash can forget the slots taken in
        // its last moments (up to `wal_writer_delay`, 200 ms by default), so the sends
        // right after it may go that much early. A restart or a Roster crash loses none.
        let taken = sqlx::query_scalar!(
            r#"with clock as (select clock_timestamp() as now)
               update send_budget set next_slot = greatest(next_slot, clock.now) + make_interval(secs => $1)
               from clock
               where greatest(next_slot, clock.now) <= clock.now + make_interval(secs => $2)
                 and (select set_config('synchronous_commit', 'off', true)) is not null
               returning extract(epoch from next_slot - make_interval(secs => $1) - clock.now)::float8 as "wait!""#,
            self.interval.as_secs_f64(),
            horizon.as_secs_f64(),
        )
        .fetch_optional(pool)
        .await?;
        if let Some(wait) = taken {
            return Ok(Slot::Taken(seconds(wait)));
        }
        let wait = self.wait_for_next(pool).await?;
        Ok(Slot::Full(wait.saturating_sub(horizon)))
    }

    /// Takes a slot for a send (`bulk` for a campaign's) and waits for it; or, when
    /// none comes soon enough, a `Deferred` for when to try again.
    pub async fn wait_for_slot(&self, pool: &PgPool, bulk: bool) -> anyhow::Result<()> {
        let horizon = if bulk { BULK_HORIZON } else { URGENT_HORIZON };
        match self.take(pool, horizon).await? {
            Slot::Taken(wait) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Slot::Full(wait) => Err(Deferred { after: wait }.into()),
        }
    }

    /// How many campaign sends could take a slot now: the free slots within
    /// `BULK_HORIZON`. Once those are taken, the next comes within it after `until`
    /// (at least half the horizon on, so the sends just claimed have taken theirs).
    pub async fn bulk_room(&self, pool: &PgPool) -> sqlx::Result<BulkRoom> {
        let wait = self.wait_for_next(pool).await?;
        if wait > BULK_HORIZON {
            let until = Utc::now() + (wait - BULK_HORIZON);
            return Ok(BulkRoom::From(until));
        }
        let more = (BULK_HORIZON - wait).as_nanos() / self.interval.as_nanos().max(1);
        let count = u32::try_from(more).unwrap_or(u32::MAX).saturating_add(1);
        let used_up = (wait + self.interval * count).saturating_sub(BULK_HORIZON);
        Ok(BulkRoom::Now {
            count: usize::try_from(count).unwrap_or(usize::MAX),
            until: Utc::now() + used_up.max(BULK_HORIZON / 2),
        })
    }

    /// How long until the next free slot.
    async fn wait_for_next(&self, pool: &PgPool) -> sqlx::Result<Duration> {
        let wait = sqlx::query_scalar!(
            r#"select extract(epoch from greatest(next_slot, now) - now)::float8 as "wait!"
               from send_budget, (select clock_timestamp() as now) as clock"#
        )
        .fetch_one(pool)
        .await?;
        Ok(seconds(wait))
    }
}

/// A wait in seconds as a duration (none when negative).
fn seconds(wait: f64) -> Duration {
    Duration::try_from_secs_f64(wait).unwrap_or(Duration::ZERO)
}
