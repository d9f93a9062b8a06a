//! `roster clerk backfill`: every user and waitlist entry Clerk's Backend API lists,
//! oldest first, applied to the contacts under the same rules as a delivery (never older
//! over newer; a deletion's tombstone holds), a page per transaction with the page's
//! place (`clerk_backfills`), so a backfill that stopped resumes where it was and one
//! run twice changes nothing more. Users are applied as a `user.created` with its
//! settings, entries as a `waitlistEntry.created`; workflows start only when asked, then
//! as that event would start them, each at most once per person.

use chrono::Utc;
use serde_json::value::RawValue;
use sqlx::{Acquire, PgConnection, PgPool};

use super::{ClerkApi, PAGE};
use crate::clerk::envelope::{UserData, WaitlistEntryData, parse_checked};
use crate::clerk::sync::facts::UserFacts;
use crate::clerk::sync::{Applied, ContactChange, ContactEvent, Mode, SyncError};
use crate::clerk::triggers::start_workflows;
use crate::config::clerk::ClerkSettings;
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

/// Reads one listing to its end, from where a stopped backfill left it.
async fn read_listing(
    pool: &PgPool,
    api: &ClerkApi,
    context: &Context<'_>,
    listing: Listing,
    progress: &indicatif::ProgressBar,
    runs_started: &mut usize,
) -> anyhow::Result<Counts> {
    let mut offset = resume_offset(pool, listing).await?;
    let mut counts = Counts {
        resumed_at: offset as u64,
        ..Counts::default()
    };
    progress.inc(offset as u64);
    loop {
        let page = match listing {
            Listing::Users => api.users(offset).await?,
            Listing::WaitlistEntries => {
                let (page, total) = api.waitlist_entries(offset).await?;
                if offset == counts.resumed_at as usize {
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
        offset += page.len();
        let finished = page.len() < PAGE;
        save_offset(&mut tx, listing, offset, finished).await?;
        tx.commit().await?;
        progress.inc(page.len() as u64);
        if finished {
            return Ok(counts);
        }
    }
}

/// Where to start `listing`: where an unfinished backfill stopped, else the start.
async fn resume_offset(pool: &PgPool, listing: Listing) -> sqlx::Result<usize> {
    let offset = sqlx::query_scalar!(
        "select next_offset from clerk_backfills where listing = $1 and finished_at is null",
        listing.as_str()
    )
    .fetch_optional(pool)
    .await?;
    Ok(offset.map_or(0, |offset| usize::try_from(offset).unwrap_or(0)))
}

async fn save_offset(
    conn: &mut PgConnection,
    listing: Listing,
    offset: usize,
    finished: bool,
) -> sqlx::Result<()> {
    let offset = i32::try_from(offset).unwrap_or(i32::MAX);
    sqlx::query!(
        "insert into clerk_backfills (listing, next_offset, finished_at)
         values ($1, $2, case when $3 then now() end)
         on conflict (listing) do update set
             next_offset = excluded.next_offset,
             started_at = case when clerk_backfills.finished_at is null
                          then clerk_backfills.started_at else now() end,
             updated_at = now(),
             finished_at = excluded.finished_at",
        listing.as_str(),
        offset,
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
                    &settings.user_created,
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
    if let Some(workflows) = context.workflows {
        let event_type = listing.event_type();
        let payload = format!(
            r#"{{"object":"event","type":"{event_type}","timestamp":{},"data":{}}}"#,
            Utc::now().timestamp_millis(),
            object.get()
        );
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

/// The `id` of a listed object that could not be read whole, for the summary.
fn object_id(object: &RawValue) -> String {
    serde_json::from_str::<serde_json::Value>(object.get())
        .ok()
        .and_then(|value| value["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(no id)".to_owned())
}
