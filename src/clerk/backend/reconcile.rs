//! `roster clerk reconcile [--fix]`: compares Clerk's users with the contacts and
//! reports the drift: users in Clerk with no contact, contacts of users Clerk no longer
//! has, and fields that differ (email, names when Roster copies them, banned, locked).
//! With `fix`, each is repaired as the missed delivery would have: a listed user is
//! applied as its newest `user.updated` (also when Roster already holds that version),
//! a user Clerk no longer has as a `user.deleted` now (its tombstone holds). A deletion
//! is the one repair that cannot be undone, so each is asked of Clerk again by ID first
//! (offset pages shift when users go between two pages), and none is made when the
//! listing had users it could not read or when they are more than a few percent of the
//! users (a `CLERK_SECRET_KEY` of another instance lists none of them). Each run and
//! its figures are kept (`clerk_reconciles`) for `roster_clerk_drift`.
//!
//! Clerk's users are read a page at a time; their IDs go in a temporary table, so the
//! contacts Clerk does not list are found by PostgreSQL, whatever the audience's size.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::backfill::{Context, Listing, apply_listed, object_id};
use super::{ClerkApi, PAGE};
use crate::clerk::envelope::{DeletedUserData, UserData, parse_checked};
use crate::clerk::sync::{ContactChange, ContactEvent, Mode, SyncError};

/// The most contacts a `--fix` deletes: this share of the Clerk users' contacts, or
/// `MIN_DELETIONS` when that is more.
const MAX_DELETED_SHARE: f64 = 0.05;
const MIN_DELETIONS: usize = 10;
use crate::config::clerk::ClerkSettings;

/// The drift found, and what was repaired.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drift {
    /// Clerk users with an email address and no contact.
    pub missing_in_roster: Vec<String>,
    /// Contacts of Clerk users that Clerk no longer lists (and Roster has no deletion
    /// for).
    pub missing_in_clerk: Vec<String>,
    /// Users whose contact differs, with the fields that do.
    pub different: Vec<(String, Vec<&'static str>)>,
    /// Drift repaired (with `fix`).
    pub fixed: usize,
    /// Users that could not be read or repaired, with why.
    pub skipped: Vec<(String, String)>,
}

impl Drift {
    pub fn total(&self) -> usize {
        self.missing_in_roster.len() + self.missing_in_clerk.len() + self.different.len()
    }
}

/// The contact's fields a user's data is compared with.
#[derive(sqlx::FromRow)]
struct Synced {
    user_id: String,
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    clerk_banned: bool,
    clerk_locked: bool,
}

/// A reconcile begun: its row in `clerk_reconciles`.
pub struct Run {
    id: i64,
    started_at: DateTime<Utc>,
}

/// Begins a reconcile.
pub async fn begin(pool: &PgPool) -> sqlx::Result<Run> {
    sqlx::query_as!(
        Run,
        "insert into clerk_reconciles default values returning id, started_at"
    )
    .fetch_one(pool)
    .await
}

/// Begins a reconcile if none began within `every`; the lock held while deciding
/// keeps two processes from both deciding so.
pub async fn begin_if_due(pool: &PgPool, every: std::time::Duration) -> sqlx::Result<Option<Run>> {
    let mut tx = pool.begin().await?;
    sqlx::query!("select pg_advisory_xact_lock(hashtextextended('clerk-reconcile', 0))")
        .execute(&mut *tx)
        .await?;
    let run = sqlx::query_as!(
        Run,
        "insert into clerk_reconciles (started_at)
         select now() where not exists (
             select 1 from clerk_reconciles
             where started_at > now() - make_interval(secs => $1)
               -- one that failed or was stopped is tried again within the hour
               and (finished_at is not null or started_at > now() - interval '1 hour'))
         returning id, started_at",
        every.as_secs_f64()
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(run)
}

/// Reconciles, as `run`.
pub async fn reconcile(
    pool: &PgPool,
    api: &ClerkApi,
    settings: &ClerkSettings,
    fix: bool,
    run: Run,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Drift> {
    let (run_id, started_at) = (run.id, run.started_at);
    progress.set_length(api.user_count().await?);
    let mut conn = pool.acquire().await?;
    sqlx::query("create temporary table if not exists clerk_listed (user_id text primary key)")
        .execute(&mut *conn)
        .await?;
    sqlx::query("truncate clerk_listed")
        .execute(&mut *conn)
        .await?;

    let mut drift = Drift::default();
    let context = Context {
        settings,
        user_settings: &settings.user_updated,
        workflows: None,
        mode: Mode::Replay,
    };
    let mut offset = 0;
    loop {
        let page = api.users(None, offset).await?;
        let mut users = Vec::with_capacity(page.len());
        // Every user listed, also one that cannot be read: it is not missing.
        let mut ids = Vec::with_capacity(page.len());
        for object in &page {
            match parse_checked::<UserData>(object.get()) {
                Ok(user) => {
                    ids.push(user.id.clone());
                    users.push((user, object));
                }
                Err(why) => {
                    ids.push(object_id(object));
                    drift.skipped.push((object_id(object), why));
                }
            }
        }
        // The temporary table is this connection's: not known to the query macros.
        sqlx::query("insert into clerk_listed select unnest($1::text[]) on conflict do nothing")
            .bind(&ids)
            .execute(&mut *conn)
            .await?;
        let contacts: HashMap<String, Synced> = sqlx::query_as!(
            Synced,
            r#"select user_id as "user_id!", email, first_name, last_name, clerk_banned, clerk_locked
               from contacts where user_id = any($1)"#,
            &ids
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|c| (c.user_id.clone(), c))
        .collect();
        for (user, object) in &users {
            let Some(email) = user.primary_email() else {
                continue; // no address: Roster keeps no contact for it
            };
            let drifted = match contacts.get(&user.id) {
                None => {
                    drift.missing_in_roster.push(user.id.clone());
                    true
                }
                Some(contact) => {
                    let fields = differences(contact, user, email, settings);
                    let drifted = !fields.is_empty();
                    if drifted {
                        drift.different.push((user.id.clone(), fields));
                    }
                    drifted
                }
            };
            if fix && drifted {
                let mut tx = pool.begin().await?;
                match apply_listed(&mut tx, &context, Listing::Users, object).await? {
                    Ok((applied, _)) if applied.change != ContactChange::Stale => drift.fixed += 1,
                    Ok(_) => drift
                        .skipped
                        .push((user.id.clone(), "Roster holds newer data".into())),
                    Err(skipped) => drift.skipped.push(skipped),
                }
                tx.commit().await?;
            }
        }
        offset += page.len();
        progress.inc(page.len() as u64);
        if page.len() < PAGE {
            break;
        }
    }

    // Contacts created, or of users who signed up, since the listing began may not be
    // in it: left for next time.
    let listed_unreadable = !drift.skipped.is_empty();
    let candidates: Vec<String> = sqlx::query_scalar(
        "select user_id from contacts c
         where user_id is not null and created_at < $1
           and coalesce(clerk_updated_at, created_at) < $1
           and not exists (select 1 from clerk_listed l where l.user_id = c.user_id)
           and not exists (select 1 from clerk_user_deletions d where d.user_id = c.user_id)
         order by user_id",
    )
    .bind(started_at)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("drop table clerk_listed")
        .execute(&mut *conn)
        .await?;
    drop(conn);
    // Asked again by ID: a user the offset pages missed is not missing.
    for ids in candidates.chunks(100) {
        let found: Vec<String> = api
            .users_by_id(ids)
            .await?
            .iter()
            .map(|user| object_id(user))
            .collect();
        drift
            .missing_in_clerk
            .extend(ids.iter().filter(|id| !found.contains(id)).cloned());
    }
    let users_known = sqlx::query_scalar!(
        r#"select count(*) as "count!" from contacts where user_id is not null"#
    )
    .fetch_one(pool)
    .await?;
    let most = MIN_DELETIONS.max((users_known as f64 * MAX_DELETED_SHARE) as usize);
    let delete = if listed_unreadable {
        Err("not deleted: the listing had users that could not be read".to_owned())
    } else if drift.missing_in_clerk.len() > most {
        Err(format!(
            "not deleted: {} contacts are more than {most} (5% of the Clerk users' contacts); \
             is CLERK_SECRET_KEY the key of this audience's Clerk instance?",
            drift.missing_in_clerk.len()
        ))
    } else {
        Ok(())
    };
    if let (true, Err(why)) = (fix, &delete) {
        drift.skipped.push(("(deletions)".into(), why.clone()));
    }
    if fix && delete.is_ok() {
        for user_id in &drift.missing_in_clerk {
            let deletion = ContactEvent::UserDeleted(
                DeletedUserData {
                    id: user_id.clone(),
                },
                settings.user_deleted.action,
            );
            let mut tx = pool.begin().await?;
            match deletion.apply(&mut tx, Utc::now(), Mode::Live).await {
                Ok(_) => {
                    tx.commit().await?;
                    drift.fixed += 1;
                }
                Err(SyncError::Database(error)) => return Err(error.into()),
                Err(why) => drift.skipped.push((user_id.clone(), why.to_string())),
            }
        }
    }
    progress.finish_and_clear();
    record(pool, run_id, &drift).await?;
    Ok(drift)
}

/// The fields of `contact` that differ from what `user` would set.
fn differences(
    contact: &Synced,
    user: &UserData,
    email: &str,
    settings: &ClerkSettings,
) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if !contact.email.eq_ignore_ascii_case(email) {
        fields.push("email");
    }
    if settings.user_updated.update_names {
        if contact.first_name != user.first_name {
            fields.push("firstName");
        }
        if contact.last_name != user.last_name {
            fields.push("lastName");
        }
    }
    if contact.clerk_banned != user.banned.unwrap_or(false) {
        fields.push("banned");
    }
    if contact.clerk_locked != user.locked.unwrap_or(false) {
        fields.push("locked");
    }
    fields
}

async fn record(pool: &PgPool, run_id: i64, drift: &Drift) -> sqlx::Result<()> {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    sqlx::query!(
        "update clerk_reconciles set finished_at = now(), missing_in_roster = $2,
             missing_in_clerk = $3, different = $4, fixed = $5
         where id = $1",
        run_id,
        count(drift.missing_in_roster.len()),
        count(drift.missing_in_clerk.len()),
        count(drift.different.len()),
        count(drift.fixed),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// When the last reconcile finished, and its drift, for `/metrics`.
pub struct LastReconcile {
    pub finished_at: DateTime<Utc>,
    pub missing_in_roster: i32,
    pub missing_in_clerk: i32,
    pub different: i32,
}

pub async fn last_reconcile(pool: &PgPool) -> sqlx::Result<Option<LastReconcile>> {
    sqlx::query_as!(
        LastReconcile,
        r#"select finished_at as "finished_at!", missing_in_roster as "missing_in_roster!",
                  missing_in_clerk as "missing_in_clerk!", different as "different!"
           from clerk_reconciles where finished_at is not null
           order by finished_at desc limit 1"#
    )
    .fetch_optional(pool)
    .await
}
