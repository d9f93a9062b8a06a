//! The OpenAPI 3 document of the API, generated from the routes' annotations and
//! served at `/api/openapi.json`. The types here only describe bodies that the routes
//! build as JSON.

use std::collections::HashMap;

use actix_web::{HttpResponse, get};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{analytics, loops, roster};

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

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("ROSTER_API_KEY"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Roster API", description = "The Loops API v1 dialect and Roster's own routes. Every route takes `Authorization: Bearer $ROSTER_API_KEY`."),
    servers((url = "/api")),
    security(("api_key" = [])),
    modifiers(&BearerKey),
    paths(
        loops::account::test_api_key,
        loops::account::list_mailing_lists,
        loops::contacts::create_contact,
        loops::contacts::update_contact,
        loops::contacts::find_contact,
        loops::contacts::delete_contact_route,
        loops::properties::list_properties,
        loops::properties::create_property_route,
        loops::suppression::check_suppression,
        loops::suppression::remove_suppression,
        loops::events::send_event,
        loops::transactional::send_transactional,
        loops::transactional::list_transactional,
        loops::transactional::list_transactional_emails,
        roster::contacts::list_contacts,
        roster::contacts::contact_timeline,
        roster::events::list_events,
        roster::runs::list_runs,
        roster::runs::list_deliveries,
        roster::runs::list_jobs,
        roster::runs::replay_job,
        analytics::growth,
        analytics::churn,
        analytics::waitlist,
        analytics::events,
        analytics::active_users,
        analytics::auth_health,
    )
)]
pub struct ApiDoc;

/// The OpenAPI document; public, it holds no data.
#[get("/api/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
