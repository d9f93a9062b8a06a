//! Campaigns: one template sent once to an audience (all subscribed contacts, a
//! mailing list's, a saved segment's, or those on both), now or at a time. The
//! audience is fixed when sending starts (`start`): each recipient becomes a one-step
//! workflow run, so the engine sends it, checking subscription and suppression right
//! before, at most once per (campaign, contact).

pub mod start;
pub mod store;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use minijinja::context;

use crate::config::ConfigFile;
use crate::contacts::Contact;
use crate::email::templates::{RenderedEmail, TemplateError, Templates};
use crate::input::InputError;
use crate::input::{Invalid, one_of};
use crate::segments::check_filter;
use crate::segments::store::find_segment;
use crate::workflows::context::{sample_context, step_context};
use crate::workflows::definition::CAMPAIGN;
use crate::workflows::transactional::queue_transactional_event;

/// Job kind that fixes a campaign's audience and starts its sends; payload
/// `{"campaign": uuid}`, keyed by the campaign.
pub const START_JOB: &str = "campaign.start";

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    Sending,
    Sent,
    Cancelled,
}

impl CampaignStatus {
    pub const ALL: [Self; 5] = [
        Self::Draft,
        Self::Scheduled,
        Self::Sending,
        Self::Sent,
        Self::Cancelled,
    ];

    /// As the API shows it (Loops' spelling).
    pub fn label(self) -> &'static str {
        match self {
            Self::Draft => "Draft",
            Self::Scheduled => "Scheduled",
            Self::Sending => "Sending",
            Self::Sent => "Sent",
            Self::Cancelled => "Cancelled",
        }
    }

    /// Whether it may still be changed.
    pub fn is_editable(self) -> bool {
        matches!(self, Self::Draft | Self::Scheduled)
    }
}

/// When to send: not yet (a draft), or from a time (now, or later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    Draft,
    At(DateTime<Utc>),
}

impl Scheduling {
    /// `{"method": "now"}` or `{"method": "schedule", "timestamp": "..."}`; absent or
    /// null is a draft.
    pub fn parse(value: Option<&Value>) -> Result<Self, Invalid> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(Self::Draft);
        };
        let method = value["method"].as_str().unwrap_or_default();
        let method = one_of("scheduling.method", method, &["now", "schedule"], |m| m)?;
        if method == "now" {
            return Ok(Self::At(Utc::now()));
        }
        value["timestamp"]
            .as_str()
            .and_then(|text| crate::input::parse_date_text(text.trim()))
            .map(Self::At)
            .ok_or_else(|| {
                Invalid::field(
                    "scheduling.timestamp",
                    "`timestamp` must be a time such as 2026-12-24T09:00:00Z.",
                )
            })
    }
}

/// Checks what a campaign names: its template exists, its list is in the config file,
/// its segment (an ID) exists and can be used now. Returns the segment's ID.
pub async fn check_parts(
    conn: &mut sqlx::PgConnection,
    config: &ConfigFile,
    templates: &Templates,
    template: &str,
    list: Option<&str>,
    segment: Option<&str>,
) -> Result<Option<uuid::Uuid>, InputError> {
    if !templates.contains(template) {
        return Err(Invalid::field(
            "template",
            format!("There is no template named {template:?}."),
        )
        .into());
    }
    if let Some(id) = list
        && config.list(id).is_none()
    {
        return Err(Invalid::field(
            "mailingListId",
            format!("There is no mailing list with the ID {id:?}."),
        )
        .into());
    }
    let Some(segment) = segment else {
        return Ok(None);
    };
    let missing = || {
        Invalid::field(
            "audienceSegmentId",
            format!("There is no segment with the ID {segment:?}."),
        )
    };
    let id: uuid::Uuid = segment.parse().map_err(|_| missing())?;
    let saved = find_segment(conn, id).await?.ok_or_else(missing)?;
    check_filter(conn, config, &saved.filter).await?;
    Ok(Some(id))
}

/// The campaign's email as `contact` (or, without one, the sample contact) would get
/// it, with a placeholder unsubscribe link.
pub fn render_for(
    templates: &Templates,
    campaign: &store::Campaign,
    contact: Option<&Contact>,
) -> Result<RenderedEmail, TemplateError> {
    let event = run_event(campaign);
    let step = match contact {
        Some(contact) => step_context(contact.step_json(), event, CAMPAIGN),
        None => {
            let sample = sample_context(CAMPAIGN);
            context! { event => minijinja::Value::from(minijinja::value::Serde(event)), ..sample }
        }
    };
    let context =
        context! { unsubscribe_url => "https://roster.example/unsubscribe/preview", ..step };
    templates.render(&campaign.template, &context)
}

/// Queues the campaign's email once to `email` as a test, in the caller's transaction:
/// a transactional send (so it goes whatever the address's subscription, without an
/// unsubscribe link) whose templates see the campaign's `event`, with `test` true.
pub async fn queue_test_send(
    tx: &mut sqlx::PgConnection,
    templates: &Templates,
    campaign: &store::Campaign,
    contact: Option<&Contact>,
    email: &str,
) -> Result<(), InputError> {
    let mut event = run_event(campaign);
    event["transactionalId"] = json!(campaign.template);
    event["data"] = json!({});
    event["test"] = json!(true);
    queue_transactional_event(tx, templates, contact, email, &event).await
}

/// What the runs of a campaign see as `event`; `mailingListId` (when it goes to a list)
/// is checked again right before each send, so who left the list meanwhile gets none.
pub fn run_event(campaign: &store::Campaign) -> Value {
    json!({
        "type": "campaign", "campaignId": campaign.id, "name": campaign.name,
        "template": campaign.template, "mailingListId": campaign.mailing_list_id,
        "track": campaign.track,
    })
}
