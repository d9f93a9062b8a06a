//! Clerk facts (README, "Clerk facts"): what sessions, organization memberships and
//! Clerk Billing say about a user. Each is kept by Clerk user ID in `clerk_user_facts`
//! and `clerk_memberships` (a session or a membership often arrives before the user's
//! contact exists), under the same freshness rule as contacts, and copied onto the
//! user's contact whenever it changes.
//!
//! Writers take the person's lock (the user ID) first, so two events about one user
//! never copy from snapshots that miss each other's writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::billing::{BillingFact, SUBSCRIPTION_EVENTS};
use crate::clerk::envelope::{
    Checked, Envelope, EnvelopeError, MAX_ID_CHARS, UserData, at_most, millis,
};
use crate::config::clerk::MappedProperty;
use crate::contacts::Contact;
use crate::contacts::properties::{MAX_STRING_CHARS, coerce_value};
use crate::contacts::store;

/// The event types that change Clerk facts.
pub const FACT_EVENTS: [&str; 9] = [
    "session.created",
    "organizationMembership.created",
    "organizationMembership.updated",
    "organizationMembership.deleted",
    "organization.deleted",
    SUBSCRIPTION_EVENTS[0],
    SUBSCRIPTION_EVENTS[1],
    SUBSCRIPTION_EVENTS[2],
    SUBSCRIPTION_EVENTS[3],
];

/// An event that changes a Clerk fact about a user.
#[derive(Debug)]
pub enum FactEvent {
    /// `session.created`: the user signed in at this time.
    SignedIn { user_id: String, at: DateTime<Utc> },
    /// `organizationMembership.*`.
    Membership(Membership),
    /// `organization.deleted`: every membership of the organization ends.
    OrganizationDeleted {
        organization_id: String,
        at: DateTime<Utc>,
    },
    /// `subscription.*` and `subscriptionItem.*` of a user's (not an organization's)
    /// subscription.
    Billing(BillingFact),
}

#[derive(Debug)]
pub struct Membership {
    pub user_id: String,
    pub organization_id: String,
    pub organization_name: Option<String>,
    pub organization_slug: Option<String>,
    pub role: Option<String>,
    /// The membership's `updated_at`, or the envelope time of its deletion.
    pub version: DateTime<Utc>,
    pub deleted: bool,
}

/// `data` of `session.*`.
#[derive(Debug, Deserialize)]
struct SessionData {
    user_id: Option<String>,
    #[serde(default, deserialize_with = "millis")]
    created_at: Option<DateTime<Utc>>,
}

impl Checked for SessionData {
    fn check(&self) -> Result<(), String> {
        at_most("user_id", self.user_id.as_deref(), MAX_ID_CHARS)
    }
}

/// `data` of `organizationMembership.*`.
#[derive(Debug, Deserialize)]
struct MembershipData {
    role: Option<String>,
    organization: Option<OrganizationData>,
    public_user_data: Option<PublicUserData>,
    #[serde(default, deserialize_with = "millis")]
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct OrganizationData {
    id: String,
    name: Option<String>,
    slug: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PublicUserData {
    user_id: Option<String>,
}

impl Checked for MembershipData {
    fn check(&self) -> Result<(), String> {
        at_most("role", self.role.as_deref(), MAX_ID_CHARS)?;
        if let Some(organization) = &self.organization {
            at_most("organization.id", Some(&organization.id), MAX_ID_CHARS)?;
            at_most(
                "organization.name",
                organization.name.as_deref(),
                MAX_STRING_CHARS,
            )?;
            at_most(
                "organization.slug",
                organization.slug.as_deref(),
                MAX_ID_CHARS,
            )?;
        }
        let user_id = self
            .public_user_data
            .as_ref()
            .and_then(|u| u.user_id.as_deref());
        at_most("public_user_data.user_id", user_id, MAX_ID_CHARS)
    }
}

/// `data` of `organization.deleted`.
#[derive(Debug, Deserialize)]
struct DeletedOrganizationData {
    id: String,
}

impl Checked for DeletedOrganizationData {
    fn check(&self) -> Result<(), String> {
        at_most("id", Some(&self.id), MAX_ID_CHARS)
    }
}

impl FactEvent {
    /// The fact this envelope changes, if its type changes one. `occurred_at` is the
    /// envelope time, the version of deletions and of data without `updated_at`.
    pub fn from_envelope(
        envelope: &Envelope<'_>,
        occurred_at: DateTime<Utc>,
    ) -> Result<Option<Self>, EnvelopeError> {
        let event_type = envelope.event_type.as_ref();
        let fact = match event_type {
            "session.created" => {
                let session: SessionData = envelope.data()?;
                session.user_id.map(|user_id| Self::SignedIn {
                    user_id,
                    at: session.created_at.unwrap_or(occurred_at),
                })
            }
            "organizationMembership.created"
            | "organizationMembership.updated"
            | "organizationMembership.deleted" => {
                let membership: MembershipData = envelope.data()?;
                let deleted = event_type == "organizationMembership.deleted";
                let user_id = membership.public_user_data.and_then(|u| u.user_id);
                match (user_id, membership.organization) {
                    (Some(user_id), Some(organization)) => Some(Self::Membership(Membership {
                        user_id,
                        organization_id: organization.id,
                        organization_name: organization.name,
                        organization_slug: organization.slug,
                        role: membership.role,
                        version: match deleted {
                            true => occurred_at,
                            false => membership.updated_at.unwrap_or(occurred_at),
                        },
                        deleted,
                    })),
                    _ => None,
                }
            }
            "organization.deleted" => {
                let organization: DeletedOrganizationData = envelope.data()?;
                Some(Self::OrganizationDeleted {
                    organization_id: organization.id,
                    at: occurred_at,
                })
            }
            _ => BillingFact::from_envelope(envelope, occurred_at)?.map(Self::Billing),
        };
        Ok(fact)
    }

    /// Applies the fact; returns the contacts it changed (those whose user has one).
    pub async fn apply(&self, conn: &mut PgConnection) -> sqlx::Result<Vec<Contact>> {
        let user_ids = match self {
            Self::SignedIn { user_id, at } => {
                store::lock_person(conn, Some(user_id), None).await?;
                record_sign_in(conn, user_id, Some(*at)).await?;
                vec![user_id.clone()]
            }
            Self::Membership(membership) => {
                store::lock_person(conn, Some(&membership.user_id), None).await?;
                record_membership(conn, membership).await?;
                vec![membership.user_id.clone()]
            }
            Self::OrganizationDeleted {
                organization_id,
                at,
            } => end_memberships(conn, organization_id, *at).await?,
            Self::Billing(fact) => {
                store::lock_person(conn, Some(&fact.user_id), None).await?;
                fact.record(conn).await?;
                vec![fact.user_id.clone()]
            }
        };
        let mut changed = Vec::with_capacity(user_ids.len());
        for user_id in &user_ids {
            if let Some(contact) = copy_to_contact(conn, user_id).await? {
                changed.push(contact);
            }
        }
        Ok(changed)
    }

    /// The user the fact is about (none for a deleted organization).
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::SignedIn { user_id, .. } => Some(user_id),
            Self::Membership(membership) => Some(&membership.user_id),
            Self::OrganizationDeleted { .. } => None,
            Self::Billing(fact) => Some(&fact.user_id),
        }
    }
}

/// Keeps the newest sign-in of `user_id`.
pub(super) async fn record_sign_in(
    conn: &mut PgConnection,
    user_id: &str,
    at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    let Some(at) = at else {
        return Ok(());
    };
    sqlx::query!(
        "insert into clerk_user_facts (user_id, last_sign_in_at) values ($1, $2)
         on conflict (user_id) do update set last_sign_in_at =
             greatest(clerk_user_facts.last_sign_in_at, excluded.last_sign_in_at)",
        user_id,
        at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps the membership as of its newest event; a deletion wins a tie.
async fn record_membership(conn: &mut PgConnection, membership: &Membership) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into clerk_memberships
             (user_id, organization_id, role, organization_name, organization_slug, version, deleted)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (user_id, organization_id) do update set
             role = excluded.role,
             organization_name = coalesce(excluded.organization_name, clerk_memberships.organization_name),
             organization_slug = coalesce(excluded.organization_slug, clerk_memberships.organization_slug),
             version = excluded.version,
             deleted = excluded.deleted
         where excluded.version > clerk_memberships.version
            or (excluded.version = clerk_memberships.version and excluded.deleted
                and not clerk_memberships.deleted)",
        membership.user_id,
        membership.organization_id,
        membership.role,
        membership.organization_name,
        membership.organization_slug,
        membership.version,
        membership.deleted,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends every membership of a deleted organization not newer than its deletion;
/// returns the users whose memberships ended, their locks held.
async fn end_memberships(
    conn: &mut PgConnection,
    organization_id: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<Vec<String>> {
    let members = sqlx::query_scalar!(
        "select user_id from clerk_memberships where organization_id = $1 order by user_id",
        organization_id
    )
    .fetch_all(&mut *conn)
    .await?;
    for user_id in &members {
        store::lock_person(conn, Some(user_id), None).await?;
    }
    sqlx::query!(
        "update clerk_memberships set deleted = true, version = $2
         where organization_id = $1 and version <= $2",
        organization_id,
        at,
    )
    .execute(&mut *conn)
    .await?;
    Ok(members)
}

/// Copies the facts kept for `user_id` onto the user's contact, if there is one.
/// The caller holds the user's lock.
pub(super) async fn copy_to_contact(
    conn: &mut PgConnection,
    user_id: &str,
) -> sqlx::Result<Option<Contact>> {
    sqlx::query_as!(
        Contact,
        r#"update contacts set
               (clerk_last_sign_in_at, clerk_subscription_status, clerk_plan, clerk_trial_ends_at) =
                   (select last_sign_in_at, subscription_status, plan, trial_ends_at
                    from clerk_user_facts where user_id = $1),
               clerk_organizations = coalesce(
                   (select jsonb_agg(jsonb_build_object('id', organization_id,
                                'name', organization_name, 'slug', organization_slug,
                                'role', role) order by organization_id)
                    from clerk_memberships where user_id = $1 and not deleted),
                   '[]'),
               updated_at = now()
           where user_id = $1
           returning *"#,
        user_id,
    )
    .fetch_optional(conn)
    .await
}

/// What a user event says of the user besides the contact's own fields: banned,
/// locked, the last sign-in, and the `[clerk.properties]` values its metadata holds.
#[derive(Debug, Default)]
pub struct UserFacts {
    pub banned: bool,
    pub locked: bool,
    /// When the lockout ends: `updated_at` plus `lockout_expires_in_seconds`.
    pub locked_until: Option<DateTime<Utc>>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// Mapped properties with a value of their type.
    pub set: Map<String, Value>,
    /// Mapped properties the metadata no longer holds.
    pub removed: Vec<String>,
}

/// Writes a user event's facts onto contact `id` (user `user_id`, whose lock the
/// caller holds), with the facts kept for the user; returns the contact as written.
pub(super) async fn write_user_facts(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: &str,
    facts: &UserFacts,
) -> sqlx::Result<Option<Contact>> {
    record_sign_in(conn, user_id, facts.last_sign_in_at).await?;
    sqlx::query!(
        "update contacts set clerk_banned = $2, clerk_locked = $3, clerk_locked_until = $6,
             properties = (properties - $4::text[]) || $5
         where id = $1",
        id,
        facts.banned,
        facts.locked,
        &facts.removed,
        Value::Object(facts.set.clone()),
        facts.locked_until,
    )
    .execute(&mut *conn)
    .await?;
    copy_to_contact(conn, user_id).await
}

/// When a locked user's lockout ends: `lockout_expires_in_seconds` after the event's
/// `updated_at` (now without one); none while not locked or locked for good.
fn lockout_end(user: &UserData) -> Option<DateTime<Utc>> {
    if user.locked != Some(true) {
        return None;
    }
    let seconds = user
        .lockout_expires_in_seconds?
        .clamp(0, 100 * 365 * 24 * 60 * 60);
    let from = user.updated_at.unwrap_or_else(Utc::now);
    from.checked_add_signed(chrono::TimeDelta::seconds(seconds))
}

impl UserFacts {
    /// The facts `user` carries, its metadata read through `mapped`. A value of another
    /// type than its property's is left out (the property keeps what it had) and
    /// logged: the user's metadata is Clerk's to fix, and the delivery still applies.
    pub fn of(user: &UserData, mapped: &BTreeMap<String, MappedProperty>) -> Self {
        let mut facts = Self {
            banned: user.banned.unwrap_or(false),
            locked: user.locked.unwrap_or(false),
            locked_until: lockout_end(user),
            last_sign_in_at: user.last_sign_in_at,
            ..Self::default()
        };
        for (name, property) in mapped {
            let path = property.path();
            let metadata = match path[0] {
                "public_metadata" => &user.public_metadata,
                "private_metadata" => &user.private_metadata,
                _ => &user.unsafe_metadata,
            };
            let found = path[1..]
                .iter()
                .try_fold(metadata, |value, key| value.get(*key))
                .filter(|value| !value.is_null());
            let (Some(value), Some(kind)) = (found, property.kind()) else {
                facts.removed.push(name.clone());
                continue;
            };
            match coerce_value(kind, value) {
                Ok(value) => {
                    facts.set.insert(name.clone(), value);
                }
                Err(why) => {
                    tracing::warn!(user_id = %user.id, property = %name, "metadata value {why}: not copied");
                }
            }
        }
        facts
    }
}

/// Creates the custom properties `[clerk.properties]` maps that do not exist yet, so
/// segments and the dashboard know their types; fails naming each that exists with
/// another type. Run at start, before any event is applied.
pub async fn register_mapped_properties(
    conn: &mut PgConnection,
    mapped: &BTreeMap<String, MappedProperty>,
) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (name, property) in mapped {
        let Some(kind) = property.kind() else {
            continue; // refused by the config check
        };
        let existing = sqlx::query_scalar!(
            "with created as (
                 insert into contact_properties (name, type) values ($1, $2)
                 on conflict (name) do nothing returning type
             )
             select type as \"type!\" from created
             union all select type from contact_properties where name = $1",
            name,
            kind.as_str(),
        )
        .fetch_all(&mut *conn)
        .await?;
        if let Some(other) = existing.iter().find(|t| *t != kind.as_str()) {
            problems.push(format!(
                "[clerk.properties] {name}: the custom property {name} is a {other}, not a {}; set `type = \"{other}\"` or map another property",
                kind.as_str()
            ));
        }
    }
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
