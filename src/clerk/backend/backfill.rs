//! `roster clerk backfill`: every user and waitlist entry Clerk's Backend API lists,
//! oldest first, applied to the contacts under the same rules as a delivery (never older
//! over newer; a deletion's tombstone holds), a page per transaction with the page's
//! place (`clerk_backfills`), so a backfill that stopped resumes where it was and one
//! run twice changes nothing more. Users are applied as a `user.created` with its
//! settings, entries as a `waitlistEntry.created`; workflows start only when asked, and
//! only for the people the backfill brings in (a contact it creates), as that event
//! would start them: whoever Roster already knew has had their workflows.

use chrono::Utc;
use serde_json::value::RawValue;
use sqlx::{Acquire, PgConnection, PgPool};

use super::{ClerkApi, PAGE};
use crate::clerk::envelope::{UserData, WaitlistEntryData, parse_checked};
use crate::clerk::redact::redact;
use crate::clerk::sync::facts::UserFacts;
use crate::clerk::sync::{Applied, ContactChange, ContactEvent, Mode, SyncError};
use crate::clerk::triggers::start_workflows;
use crate::config::clerk::{ClerkSettings, UserEventSettings};
use crate::db;
use crate::workflows::Workflows;

/// The two listings, in the order they are read: users first, so an entry whose
/// person has signed up finds their contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Users,
    WaitlistEntries,
}

impl Listing {
    fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::WaitlistEntries => "waitlist_entries",
        }
    }

    /// The event type a listed object is applied as.
    fn event_type(self) -> &'static str {
        match self {
            Self::Users => "user.created",
            Self::WaitlistEntries => "waitlistEntry.created",
        }
    }
}

/// What a backfill did with one listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub listed: u64,
    pub created: u64,
    pub updated: u64,
    /// Already as new in Roster (or older than the person's deletion).
    pub unchanged: u64,
    /// A user without an email address: no contact to keep.
    pub no_email: u64,
    /// Objects not applied, with why: malformed, or a conflict the next run may clear.
    pub skipped: Vec<(String, String)>,
    /// Where it began: 0, or the page a stopped backfill had reached.
    pub resumed_at: u64,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub users: Counts,
    pub waitlist_entries: Counts,
    pub runs_started: usize,
}

/// What applying one listed object takes.
pub struct Context<'a> {
    pub settings: &'a ClerkSettings,
    /// The settings a listed user is applied with: `[clerk.user_created]` for a
    /// backfill, `[clerk.user_updated]` for a reconcile's repair.
    pub user_settings: &'a UserEventSettings,
    pub workflows: Option<&'a Workflows>,
    pub mode: Mode,
}

pub async fn backfill(
    pool: &PgPool,
    api: &ClerkApi,
    context: &Context<'_>,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let users = api.user_count().await?;
    progress.set_length(users);
    summary.users = read_listing(
        pool,
        api,
        context,
        Listing::Users,
        progress,
        &mut summary.runs_started,
    )
    .await?;
    summary.waitlist_entries = read_listing(
        pool,
        api,
        context,
        Listing::WaitlistEntries,
        progress,
        &mut summary.runs_started,
    )
    .await?;
    progress.finish_and_clear();
    Ok(summary)
}

/// Where a listing is: how many objects are done, and for users the creation time
/// (ms) of the last one done with how many were created in that millisecond.
#[derive(Debug, Default, Clone, Copy)]
struct Place {
    done: usize,
    after_created_at: Option<i64>,
    done_at_cursor: usize,
}

impl Place {
    /// The place after `page`, whose users are oldest first.
    fn after_page(self, page: &[Box<RawValue>]) -> Self {
        let mut place = Self {
            done: self.done + page.len(),
            ..self
        };
        let created: Vec<i64> = page.iter().filter_map(|o| created_at(o)).collect();
        if let Some(&last) = created.last() {
            let at_last = created.iter().rev().take_while(|&&ms| ms == last).count();
            place.done_at_cursor = if self.after_created_at == Some(last) {
                self.done_at_cursor + at_last
            } else {
                at_last
            };
            place.after_created_at = Some(last);
        }
        place
    }
}

/// A listed object's `created_at` (ms), when it has one.
fn created_at(object: &RawValue) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Created {
        created_at: Option<i64>,
    }
    serde_json::from_str::<Created>(object.get())
        .ok()
        .and_then(|c| c.created_at)
}

/// Reads one listing to its end, from where a stopped backfill left it.
async fn read_listing(
    pool: &PgPool,
    api: &ClerkApi,
    context: &Context<'_>,
    listing: Listing,
    progress: &indicatif::ProgressBar,
    runs_started: &mut usize,
) -> anyhow::Result<Counts> {
    let Some(mut place) = resume(pool, listing).await? else {
        return Ok(Counts::default()); // finished before this backfill stopped
    };
    let mut counts = Counts {
        resumed_at: place.done as u64,
        ..Counts::default()
    };
    progress.inc(place.done as u64);
    loop {
        let page = match listing {
            // Users created after the last one done (and those of its millisecond not
            // done yet): users deleted meanwhile in Clerk shift nothing.
            Listing::Users => {
                let after = place.after_created_at.map(|ms| ms - 1);
                let skip = if after.is_some() {
                    place.done_at_cursor
                } else {
                    0
                };
                api.users(after, skip).await?
            }
            Listing::WaitlistEntries => {
                let (page, total) = api.waitlist_entries(place.done).await?;
                if place.done == counts.resumed_at as usize {
                    progress.inc_length(total);
                }
                page
            }
        };
        let mut tx = pool.begin().await?;
        for object in &page {
            let applied = apply_listed(&mut tx, context, listing, object).await?;
            counts.listed += 1;
            match applied {
                Ok((applied, started)) => {
                    *runs_started += started;
                    match applied.change {
                        ContactChange::Created => counts.created += 1,
                        ContactChange::NoEmail => counts.no_email += 1,
                        ContactChange::Stale | ContactChange::NoContact => counts.unchanged += 1,
                        _ => counts.updated += 1,
                    }
                }
                Err(skipped) => counts.skipped.push(skipped),
            }
        }
        place = place.after_page(&page);
        let finished = page.len() < PAGE;
        save_place(&mut tx, listing, place, finished).await?;
        tx.commit().await?;
        progress.inc(page.len() as u64);
        if finished {
            return Ok(counts);
        }
    }
}

/// Where to start `listing`: where an unfinished backfill stopped, else the start;
/// `None` for users a stopped backfill had finished (it stopped in the entries).
async fn resume(pool: &PgPool, listing: Listing) -> sqlx::Result<Option<Place>> {
    let places = sqlx::query!(
        "select listing, next_offset, after_created_at, done_at_cursor,
                finished_at is not null as \"finished!\"
         from clerk_backfills"
    )
    .fetch_all(pool)
    .await?;
    let unfinished = |name: &str| places.iter().any(|p| p.listing == name && !p.finished);
    if listing == Listing::Users && !unfinished("users") && unfinished("waitlist_entries") {
        return Ok(None);
    }
    let place = places
        .iter()
        .find(|p| p.listing == listing.as_str() && !p.finished)
        .map(|p| Place {
            done: usize::try_from(p.next_offset).unwrap_or(0),
            after_created_at: p.after_created_at,
            done_at_cursor: usize::try_from(p.done_at_cursor).unwrap_or(0),
        });
    Ok(Some(place.unwrap_or_default()))
}

async fn save_place(
    conn: &mut PgConnection,
    listing: Listing,
    place: Place,
    finished: bool,
) -> sqlx::Result<()> {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    sqlx::query!(
        "insert into clerk_backfills
             (listing, next_offset, after_created_at, done_at_cursor, finished_at)
         values ($1, $2, $3, $4, case when $5 then now() end)
         on conflict (listing) do update set
             next_offset = excluded.next_offset,
             after_created_at = excluded.after_created_at,
             done_at_cursor = excluded.done_at_cursor,
             started_at = case when clerk_backfills.finished_at is null
                          then clerk_backfills.started_at else now() end,
             updated_at = now(),
             finished_at = excluded.finished_at",
        listing.as_str(),
        count(place.done),
        place.after_created_at,
        count(place.done_at_cursor),
        finished,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies one listed user or entry in a savepoint of `tx`, with the workflows it
/// starts when asked. `Ok(Err((id, why)))` when it was skipped: malformed, or held back
/// by a conflict a later run may clear.
pub async fn apply_listed(
    tx: &mut PgConnection,
    context: &Context<'_>,
    listing: Listing,
    object: &RawValue,
) -> sqlx::Result<Result<(Applied, usize), (String, String)>> {
    let settings = context.settings;
    let (event, id) = match listing {
        Listing::Users => match parse_checked::<UserData>(object.get()) {
            Ok(user) => {
                let facts = UserFacts::of(&user, &settings.properties);
                let id = user.id.clone();
                let event = ContactEvent::UserUpserted(
                    Box::new(user),
                    facts,
                    context.user_settings,
                    settings.user_deleted.action,
                );
                (event, id)
            }
            Err(why) => return Ok(Err((object_id(object), why))),
        },
        Listing::WaitlistEntries => match parse_checked::<WaitlistEntryData>(object.get()) {
            Ok(entry) => {
                let id = entry.id.clone();
                (
                    ContactEvent::WaitlistEntry(entry, &settings.waitlist_entry_created),
                    id,
                )
            }
            Err(why) => return Ok(Err((object_id(object), why))),
        },
    };
    let mut savepoint = tx.begin().await?;
    let applied = match event.apply(&mut savepoint, Utc::now(), context.mode).await {
        Ok(applied) => applied,
        Err(SyncError::Database(error)) if !db::is_bad_data(&error) => return Err(error),
        Err(why) => {
            savepoint.rollback().await?;
            return Ok(Err((id, why.to_string())));
        }
    };
    let mut started = 0;
    let brought_in = applied.change == ContactChange::Created;
    if let Some(workflows) = context.workflows.filter(|_| brought_in) {
        let event_type = listing.event_type();
        let payload = format!(
            r#"{{"object":"event","type":"{event_type}","timestamp":{},"data":{}}}"#,
            Utc::now().timestamp_millis(),
            object.get()
        );
        // What runs see as `event`, as a delivery's would be stored: secrets removed.
        let payload = redact(event_type, &payload)
            .map_err(|e| sqlx::Error::Decode(e.into()))?
            .into_owned();
        // One key per person, so a backfill run again starts nothing twice.
        let key = format!("backfill:{id}");
        started = start_workflows(
            &mut savepoint,
            workflows,
            &key,
            event_type,
            &payload,
            &applied,
        )
        .await?;
    }
    savepoint.commit().await?;
    Ok(Ok((applied, started)))
}

/// The `id` of a listed object, also of one that cannot be read whole.
pub fn object_id(object: &RawValue) -> String {
    serde_json::from_str::<serde_json::Value>(object.get())
        .ok()
        .and_then(|value| value["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(no id)".to_owned())
}
