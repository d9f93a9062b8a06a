//! A stand-in for Clerk's Backend API, which cannot run here. It answers the endpoints
//! `roster clerk backfill` and `reconcile` read, as Clerk documents them
//! (clerk.com/docs/reference/backend-api):
//! - every request needs `Authorization: Bearer <secret key>`, else 401 with Clerk's
//!   error body `{"errors": [{"message", "long_message", "code"}]}`;
//! - `GET /v1/users?limit&offset&order_by&created_at_after&user_id…`: a bare JSON array
//!   of User objects; `limit` 1 to 500 (default 10), `offset` from 0, `order_by` one of
//!   Clerk's fields with an optional `+`/`-` (default `-created_at`, newest first),
//!   `created_at_after` (ms) only users created after it, `user_id` (repeated, at most
//!   100) only those users; anything else is a 422 `form_param_value_invalid`;
//! - `GET /v1/users/count`: `{"object": "total_count", "total_count": N}`;
//! - `GET /v1/waitlist_entries?limit&offset&order_by`: `{"data": [...], "total_count": N}`,
//!   the same paging, ordered by `created_at`, `invited_at` or `email_address`;
//! - when told, a 429 with `Retry-After` (seconds) as Clerk's rate limiter answers, or
//!   503s; and a page of users can be held (a request for it gets no answer), so a test
//!   can stop a backfill there.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "sk_test_cm9zdGVyLXN0YW5kLWlu";

/// A request the stand-in answered, and how.
#[derive(Debug, Clone)]
pub struct Served {
    pub path: String,
    pub limit: usize,
    /// The `id` of the page's first object (none when empty, or not a listing).
    pub first: Option<String>,
    pub status: u16,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    users: Vec<Value>,
    waitlist_entries: Vec<Value>,
    served: Vec<Served>,
    /// The next request of `/v1/users` for a page that begins with this user answers
    /// 429 (once).
    rate_limit_at: Option<String>,
    /// This many next requests answer 503.
    unavailable: usize,
    /// Requests of `/v1/users` for a page that begins with this user get no answer.
    hold_at: Option<String>,
}

#[derive(Clone)]
pub struct ClerkApi {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl ClerkApi {
    pub async fn start(users: Vec<Value>, waitlist_entries: Vec<Value>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let api = Self {
            url,
            state: Arc::new(Mutex::new(State {
                users,
                waitlist_entries,
                ..State::default()
            })),
        };
        let shared = web::Data::new(api.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route("/v1/users/count", web::get().to(count_users))
                .route("/v1/users", web::get().to(list_users))
                .route("/v1/waitlist_entries", web::get().to(list_waitlist_entries))
                .default_service(web::to(not_found))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        api
    }

    /// Changes Clerk's users (as sign-ups, edits and deletions in Clerk would).
    pub fn edit_users(&self, edit: impl FnOnce(&mut Vec<Value>)) {
        edit(&mut self.state.lock().unwrap().users);
    }

    pub fn rate_limit_at(&self, first_user: &str) {
        self.state.lock().unwrap().rate_limit_at = Some(first_user.to_owned());
    }

    pub fn unavailable_for(&self, requests: usize) {
        self.state.lock().unwrap().unavailable = requests;
    }

    /// Requests of `/v1/users` for a page that begins with `first_user` get no answer
    /// from now on, until cleared.
    pub fn hold_at(&self, first_user: Option<&str>) {
        self.state.lock().unwrap().hold_at = first_user.map(str::to_owned);
    }

    pub fn served(&self) -> Vec<Served> {
        self.state.lock().unwrap().served.clone()
    }
}

/// A user as Clerk's Backend API gives it, created `created_at` (ms).
pub fn clerk_user(id: &str, email: &str, first_name: &str, created_at: i64) -> Value {
    let email_id = format!("idn_{id}");
    json!({
        "object": "user", "id": id, "external_id": null, "username": null,
        "first_name": first_name, "last_name": "Tester",
        "image_url": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9", "has_image": false,
        "primary_email_address_id": email_id, "primary_phone_number_id": null,
        "primary_web3_wallet_id": null,
        "email_addresses": [{
            "object": "email_address", "id": email_id, "email_address": email,
            "verification": {"status": "verified", "strategy": "email_code", "attempts": 1, "expire_at": null},
            "linked_to": []
        }],
        "phone_numbers": [], "web3_wallets": [], "external_accounts": [],
        "enterprise_accounts": [], "passkeys": [],
        "password_enabled": true, "two_factor_enabled": false, "totp_enabled": false,
        "backup_code_enabled": false, "banned": false, "locked": false,
        "lockout_expires_in_seconds": null, "verification_attempts_remaining": 100,
        "public_metadata": {}, "private_metadata": {"internal": "never stored"},
        "unsafe_metadata": {},
        "created_at": created_at, "updated_at": created_at,
        "last_sign_in_at": null, "last_active_at": null,
        "password_last_updated_at": null, "legal_accepted_at": null,
        "create_organization_enabled": true, "create_organizations_limit": null,
        "delete_self_enabled": true, "locale": null
    })
}

/// A waitlist entry as Clerk's Backend API gives it.
pub fn clerk_waitlist_entry(id: &str, email: &str, created_at: i64) -> Value {
    json!({
        "object": "waitlist_entry", "id": id, "email_address": email, "status": "pending",
        "is_locked": false, "invitation": null,
        "created_at": created_at, "updated_at": created_at
    })
}

fn clerk_error(status: u16, code: &str, message: &str, long_message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(json!({
        "errors": [{ "message": message, "long_message": long_message, "code": code }],
        "clerk_trace_id": "trace_stand_in"
    }))
}

#[derive(Deserialize)]
struct Paging {
    limit: Option<String>,
    offset: Option<String>,
    order_by: Option<String>,
    created_at_after: Option<String>,
}

/// Clerk's 422 for a query parameter it cannot take.
fn invalid(param: &str) -> HttpResponse {
    clerk_error(
        422,
        "form_param_value_invalid",
        "is invalid",
        &format!("{param} is invalid"),
    )
}

/// `limit`, `offset` and whether oldest first, as Clerk reads them; else the parameter
/// that is invalid.
fn paging(query: &Paging, sortable: &[&str]) -> Result<(usize, usize, bool), &'static str> {
    let limit = match &query.limit {
        None => 10,
        Some(text) => match text.parse::<usize>() {
            Ok(limit @ 1..=500) => limit,
            _ => return Err("limit"),
        },
    };
    let offset = match &query.offset {
        None => 0,
        Some(text) => text.parse::<usize>().map_err(|_| "offset")?,
    };
    let order = query.order_by.as_deref().unwrap_or("-created_at");
    let (ascending, field) = match order.strip_prefix('-') {
        Some(field) => (false, field),
        None => (true, order.strip_prefix('+').unwrap_or(order)),
    };
    if !sortable.contains(&field) {
        return Err("order_by");
    }
    // Ordered by `created_at` whatever the field: Roster asks for `+created_at`.
    Ok((limit, offset, ascending))
}

/// The bearer check, the 503s and the 429 asked for; `None` when the request is served.
fn refusal(
    api: &ClerkApi,
    request: &HttpRequest,
    first: Option<&String>,
) -> Option<(u16, HttpResponse)> {
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {SECRET_KEY}"));
    if !authorized {
        return Some((
            401,
            clerk_error(
                401,
                "authorization_invalid",
                "Unauthorized request",
                "You are not authorized to perform this request",
            ),
        ));
    }
    let mut state = api.state.lock().unwrap();
    if state.unavailable > 0 {
        state.unavailable -= 1;
        return Some((503, HttpResponse::ServiceUnavailable().finish()));
    }
    if first.is_some() && state.rate_limit_at.as_ref() == first {
        state.rate_limit_at = None;
        return Some((
            429,
            HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "1"))
                .json(json!({"errors": [{"message": "Too many requests", "long_message": "Too many requests, retry later", "code": "too_many_requests"}]})),
        ));
    }
    None
}

fn record(
    api: &ClerkApi,
    request: &HttpRequest,
    first: Option<&String>,
    limit: usize,
    status: u16,
) {
    api.state.lock().unwrap().served.push(Served {
        path: request.path().to_owned(),
        first: first.cloned(),
        limit,
        status,
        at: Instant::now(),
    });
}

async fn list_users(
    api: web::Data<ClerkApi>,
    request: HttpRequest,
    query: web::Query<Paging>,
) -> HttpResponse {
    const SORTABLE: [&str; 10] = [
        "created_at",
        "updated_at",
        "email_address",
        "web3wallet",
        "first_name",
        "last_name",
        "phone_number",
        "username",
        "last_active_at",
        "last_sign_in_at",
    ];
    let (limit, offset, ascending) = match paging(&query, &SORTABLE) {
        Ok(paging) => paging,
        Err(param) => {
            record(&api, &request, None, 0, 422);
            return invalid(param);
        }
    };
    let after = match query.created_at_after.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(ms)) => Some(ms),
        Some(Err(_)) => {
            record(&api, &request, None, 0, 422);
            return invalid("created_at_after");
        }
    };
    let wanted: Vec<String> = url::form_urlencoded::parse(request.query_string().as_bytes())
        .filter(|(key, _)| key == "user_id")
        .map(|(_, id)| id.into_owned())
        .collect();
    if wanted.len() > 100 {
        record(&api, &request, None, 0, 422);
        return invalid("user_id");
    }
    let (page, held) = {
        let state = api.state.lock().unwrap();
        let users: Vec<Value> = state
            .users
            .iter()
            .filter(|u| wanted.is_empty() || wanted.iter().any(|id| u["id"] == id.as_str()))
            .filter(|u| after.is_none_or(|ms| u["created_at"].as_i64() > Some(ms)))
            .cloned()
            .collect();
        let page = page_of(&users, offset, limit, ascending);
        let first = page.first().and_then(|u| u["id"].as_str());
        let held = first.is_some() && state.hold_at.as_deref() == first;
        (page, held)
    };
    if held {
        std::future::pending::<()>().await;
    }
    let first = page
        .first()
        .and_then(|u| u["id"].as_str())
        .map(str::to_owned);
    if let Some((status, response)) = refusal(&api, &request, first.as_ref()) {
        record(&api, &request, first.as_ref(), limit, status);
        return response;
    }
    record(&api, &request, first.as_ref(), limit, 200);
    HttpResponse::Ok().json(page)
}

async fn count_users(api: web::Data<ClerkApi>, request: HttpRequest) -> HttpResponse {
    if let Some((status, response)) = refusal(&api, &request, None) {
        record(&api, &request, None, 0, status);
        return response;
    }
    let total = api.state.lock().unwrap().users.len();
    record(&api, &request, None, 0, 200);
    HttpResponse::Ok().json(json!({ "object": "total_count", "total_count": total }))
}

async fn list_waitlist_entries(
    api: web::Data<ClerkApi>,
    request: HttpRequest,
    query: web::Query<Paging>,
) -> HttpResponse {
    let (limit, offset, ascending) =
        match paging(&query, &["created_at", "invited_at", "email_address"]) {
            Ok(paging) => paging,
            Err(param) => {
                record(&api, &request, None, 0, 422);
                return invalid(param);
            }
        };
    if let Some((status, response)) = refusal(&api, &request, None) {
        record(&api, &request, None, limit, status);
        return response;
    }
    let state = api.state.lock().unwrap();
    let page = page_of(&state.waitlist_entries, offset, limit, ascending);
    let total = state.waitlist_entries.len();
    drop(state);
    let first = page
        .first()
        .and_then(|e| e["id"].as_str())
        .map(str::to_owned);
    record(&api, &request, first.as_ref(), limit, 200);
    HttpResponse::Ok().json(json!({ "data": page, "total_count": total }))
}

async fn not_found() -> HttpResponse {
    clerk_error(
        404,
        "resource_not_found",
        "not found",
        "The requested resource was not found",
    )
}

/// Objects `offset..offset + limit` by `created_at`, oldest first when `ascending`.
fn page_of(objects: &[Value], offset: usize, limit: usize, ascending: bool) -> Vec<Value> {
    let mut sorted: Vec<&Value> = objects.iter().collect();
    sorted.sort_by_key(|o| o["created_at"].as_i64());
    if !ascending {
        sorted.reverse();
    }
    sorted
        .into_iter()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect()
}
