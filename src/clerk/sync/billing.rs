//! Clerk Billing facts: a user's subscription status, plan and trial end, from the
//! `subscription.*` events (`created`, `updated`, `active`, `pastDue`), whose `data` is
//! the whole subscription with its items. A subscription paid for by an organization
//! names no user, so it changes no contact. The `subscriptionItem.*` and
//! `paymentAttempt.*` events change no fact (a subscription event follows each change
//! of its items); like every event, they trigger workflows.
//!
//! Only documented fields are read (Clerk's webhook OpenAPI, `SubscriptionEventPayload`);
//! the rest of the payload is kept as it came.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;

use crate::clerk::envelope::{Checked, Envelope, EnvelopeError, MAX_ID_CHARS, at_most, millis};

/// The subscription events that carry a user's billing facts.
pub const SUBSCRIPTION_EVENTS: [&str; 4] = [
    "subscription.created",
    "subscription.updated",
    "subscription.active",
    "subscription.pastDue",
];

/// What a subscription event says of its paying user.
#[derive(Debug)]
pub struct BillingFact {
    pub user_id: String,
    /// `active`, `past_due`, `canceled`, `ended`, `abandoned`, `incomplete`, ... as
    /// Clerk sends it.
    pub status: Option<String>,
    /// The slug (else the name) of the plan of the item in effect.
    pub plan: Option<String>,
    /// The end of the free trial, when the item in effect is one.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// The subscription's `updated_at` (else the envelope time): older events lose.
    pub version: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct SubscriptionData {
    status: Option<String>,
    payer: Option<Payer>,
    #[serde(default)]
    items: Vec<Item>,
    #[serde(default, deserialize_with = "millis")]
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct Payer {
    user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Item {
    status: Option<String>,
    plan: Option<Plan>,
    #[serde(default)]
    is_free_trial: bool,
    #[serde(default, deserialize_with = "millis")]
    period_end: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct Plan {
    slug: Option<String>,
    name: Option<String>,
}

impl Checked for SubscriptionData {
    fn check(&self) -> Result<(), String> {
        at_most("status", self.status.as_deref(), MAX_ID_CHARS)?;
        let user_id = self.payer.as_ref().and_then(|p| p.user_id.as_deref());
        at_most("payer.user_id", user_id, MAX_ID_CHARS)?;
        for (i, item) in self.items.iter().enumerate() {
            at_most(
                &format!("items[{i}].status"),
                item.status.as_deref(),
                MAX_ID_CHARS,
            )?;
            if let Some(plan) = &item.plan {
                at_most(
                    &format!("items[{i}].plan.slug"),
                    plan.slug.as_deref(),
                    MAX_ID_CHARS,
                )?;
                at_most(
                    &format!("items[{i}].plan.name"),
                    plan.name.as_deref(),
                    MAX_ID_CHARS,
                )?;
            }
        }
        Ok(())
    }
}

impl SubscriptionData {
    /// The item in effect: the active one (or past due), else the upcoming one.
    fn current_item(&self) -> Option<&Item> {
        let with_status = |wanted: &[&str]| {
            self.items
                .iter()
                .find(|item| item.status.as_deref().is_some_and(|s| wanted.contains(&s)))
        };
        with_status(&["active", "past_due"]).or_else(|| with_status(&["upcoming"]))
    }
}

impl BillingFact {
    /// The fact a subscription event carries about a paying user; none for other
    /// types, and for a subscription an organization pays for.
    pub fn from_envelope(
        envelope: &Envelope<'_>,
        occurred_at: DateTime<Utc>,
    ) -> Result<Option<Self>, EnvelopeError> {
        if !SUBSCRIPTION_EVENTS.contains(&envelope.event_type.as_ref()) {
            return Ok(None);
        }
        let data: SubscriptionData = envelope.data()?;
        // Clerk sends "" rather than null for what a payer is not.
        let Some(user_id) = data
            .payer
            .as_ref()
            .and_then(|payer| payer.user_id.clone())
            .filter(|id| !id.is_empty())
        else {
            return Ok(None);
        };
        let item = data.current_item();
        let plan = item
            .and_then(|item| item.plan.as_ref())
            .and_then(|plan| plan.slug.clone().or_else(|| plan.name.clone()));
        let trial_ends_at = item
            .filter(|item| item.is_free_trial)
            .and_then(|item| item.period_end);
        Ok(Some(Self {
            user_id,
            status: data.status,
            plan,
            trial_ends_at,
            version: data.updated_at.unwrap_or(occurred_at),
        }))
    }

    /// Keeps the fact unless a newer billing event is already kept.
    pub(super) async fn record(&self, conn: &mut PgConnection) -> sqlx::Result<()> {
        sqlx::query!(
            "insert into clerk_user_facts
                 (user_id, billing_version, subscription_status, plan, trial_ends_at)
             values ($1, $2, $3, $4, $5)
             on conflict (user_id) do update set
                 billing_version = excluded.billing_version,
                 subscription_status = excluded.subscription_status,
                 plan = excluded.plan,
                 trial_ends_at = excluded.trial_ends_at
             where clerk_user_facts.billing_version is null
                or clerk_user_facts.billing_version < excluded.billing_version",
            self.user_id,
            self.version,
            self.status,
            self.plan,
            self.trial_ends_at,
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}
