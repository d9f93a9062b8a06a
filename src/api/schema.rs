//! The bodies of the API as the OpenAPI document describes them. The routes build
//! their JSON themselves; these types only describe it, for `#[utoipa::path]`.

use std::collections::HashMap;

use serde_json::Value;
use utoipa::ToSchema;

/// `{"success": false, "message": ...}`, with `path` naming the field at fault.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    success: bool,
    message: String,
    path: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SuccessResponse {
    success: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MessageResponse {
    success: bool,
    message: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ApiKeyResponse {
    success: bool,
    team_name: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ContactIdResponse {
    success: bool,
    id: uuid::Uuid,
}

/// A contact as Loops has it; custom properties are further top-level keys.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ContactBody {
    id: Option<uuid::Uuid>,
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    source: Option<String>,
    subscribed: Option<bool>,
    user_group: Option<String>,
    user_id: Option<String>,
    /// List ID → true (on the list) or false (off it).
    mailing_lists: Option<HashMap<String, bool>>,
    opt_in_status: Option<String>,
}

/// `email` or `userId`, one of them.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ContactKeyBody {
    email: Option<String>,
    user_id: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PropertyBody {
    key: String,
    label: String,
    #[schema(rename = "type")]
    kind: crate::contacts::properties::PropertyType,
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct MailingListBody {
    id: String,
    name: String,
    description: Option<String>,
    is_public: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct SuppressionResponse {
    contact: ContactKeyBody,
    is_suppressed: bool,
    /// `{"limit": null, "remaining": null}`: removals are not rationed.
    #[schema(value_type = Object)]
    removal_quota: Value,
}

/// An event: `eventName`, `email` or `userId`, `eventProperties`, `mailingLists`, and
/// contact properties at top level.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct EventBody {
    event_name: String,
    email: Option<String>,
    user_id: Option<String>,
    #[schema(value_type = Object)]
    event_properties: Option<Value>,
    mailing_lists: Option<HashMap<String, bool>>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TransactionalList {
    #[schema(value_type = Object)]
    pagination: Value,
    #[schema(value_type = Vec<Object>)]
    data: Vec<Value>,
}

/// A page of a list: `data`, and `nextCursor` to pass as `cursor` for the next page
/// (null on the last).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct Page {
    #[schema(value_type = Vec<Object>)]
    data: Vec<Value>,
    next_cursor: Option<String>,
}

/// A contact with Roster's fields, its events (Clerk and API), workflow runs with
/// their steps, and emails.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ContactTimeline {
    #[schema(value_type = Object)]
    contact: Value,
    #[schema(value_type = Vec<Object>)]
    events: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    runs: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    emails: Vec<Value>,
}

/// `from`, `to`, `interval`, and `buckets` (one per interval, zeros included) with the
/// figures of the route.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AnalyticsBody {
    from: String,
    to: String,
    interval: String,
    #[schema(value_type = Vec<Object>)]
    buckets: Vec<Value>,
}

/// A saved segment: `name` and `filter`. A filter is `{"match": "all" | "any",
/// "conditions": [...]}`; a condition is a property test
/// (`{"property": "userGroup", "operator": "equals", "value": "beta"}`; operators by
/// type: string `equals`, `notEquals`, `contains`, `startsWith`; number `equals`,
/// `notEquals`, `greaterThan`, `lessThan`; boolean `equals`, `notEquals`; date `before`,
/// `after`, `withinLastDays`; any type `isEmpty`, `isNotEmpty`), list membership
/// (`{"mailingList": "news", "negate": false}`), activity
/// (`{"activity": "received" | "opened" | "clicked", "template" | "workflow" | "campaignId": "...", "withinDays": 30,
/// "negate": true}`) or a group (another filter). Properties: the built-in ones,
/// `optInStatus`, the Clerk facts `isClerkUser`, `waitlistStatus`, `waitlistJoinedAt`,
/// `graduatedAt`, `createdAt`, `updatedAt`, `unsubscribedAt`, and every custom
/// property. Text tests ignore case; no conditions matches everyone.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SegmentBody {
    name: String,
    #[schema(value_type = Object)]
    filter: Value,
}

/// A segment with the number of contacts it matches now.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct SegmentResponse {
    id: uuid::Uuid,
    name: String,
    #[schema(value_type = Object)]
    filter: Value,
    count: i64,
    created_at: String,
    updated_at: String,
}

/// A campaign: `name`, `template` (a folder under `templates/`), optionally
/// `mailingListId` and `audienceSegmentId` (both: contacts in both; neither: every
/// subscribed contact), and `scheduling`: `{"method": "now"}` or
/// `{"method": "schedule", "timestamp": "2026-12-24T09:00:00Z"}` (absent: a draft).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct CampaignBody {
    name: String,
    template: String,
    mailing_list_id: Option<String>,
    audience_segment_id: Option<uuid::Uuid>,
    #[schema(value_type = Option<Object>)]
    scheduling: Option<Value>,
    /// Open and click tracking (default true).
    track: Option<bool>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CampaignCreated {
    success: bool,
    id: uuid::Uuid,
    /// Draft, Scheduled, Sending, Sent or Cancelled.
    status: String,
}

/// A campaign with `stats`: `recipients`, `sent`, `failed`, `suppressed`,
/// `unsubscribed` (before their email), `skipped` (deleted, cancelled), `remaining`,
/// `perSecond`, the emails sent per second over the last minute, and what relays
/// reported: `delivered`, `bounced`, `complained`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct CampaignResponse {
    id: uuid::Uuid,
    name: String,
    template: String,
    status: String,
    /// Open and click tracking.
    track: bool,
    #[schema(value_type = Object)]
    stats: Value,
}

/// An email as rendered: `subject`, `html` and `text`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RenderedEmailBody {
    subject: String,
    html: String,
    text: String,
}
