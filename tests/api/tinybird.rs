//! A stand-in for Tinybird's Events API, which cannot run here. It follows the
//! documented behaviour (https://www.tinybird.co/docs/api-reference/events-api):
//! - `POST /v0/events?name=DATASOURCE`, the body NDJSON, one event per line;
//! - `Authorization: Bearer TOKEN`, else 403; no `name`, 400;
//! - `wait=true`: 200 once written, with `successful_rows` and `quarantined_rows`;
//!   without it, 202;
//! - over its rate limit: 429 with `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
//!   `X-RateLimit-Reset` and `Retry-After` (seconds);
//! - a body over 10 MB (the limit of every plan): 413;
//! - a line that does not fit the data source's schema (not a JSON object, a column's
//!   field missing or of another type) is quarantined (counted in `quarantined_rows`),
//!   not appended.
//!
//! The data source is `analytics/tinybird/clerk_events.datasource`, whatever `name`
//! says: its columns are the schema, and it is a ReplacingMergeTree sorted by
//! `svix_id`: `rows` is everything appended, `deduplicated` what a merge leaves (the
//! last row of each svix-id).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The largest body the Events API takes (10 MB, on the Free plan; more on others).
const MAX_REQUEST_BYTES: usize = 10_000_000;

#[derive(Default)]
struct State {
    token: String,
    /// Rows appended, per data source.
    rows: BTreeMap<String, Vec<Value>>,
    /// Answers to give before taking requests again: 429 or a 5xx.
    refusals: Vec<u16>,
    requests: usize,
    /// Whether each request asked `wait=true`.
    waited: Vec<bool>,
    /// Columns the data source has besides the shipped ones (a schema Roster's rows
    /// do not fit).
    extra_columns: Vec<String>,
}

/// The shipped data source's columns and whether each is a String (else a number;
/// a DateTime is read from a string).
fn schema() -> Vec<(String, bool)> {
    let columns: Vec<(String, bool)> =
        include_str!("../../analytics/tinybird/clerk_events.datasource")
            .lines()
            .filter_map(|line| {
                let line = line.trim().strip_prefix('`')?;
                let (name, rest) = line.split_once('`')?;
                let kind = rest.trim_start();
                Some((name.to_owned(), !kind.starts_with("Int")))
            })
            .collect();
    assert!(
        columns.iter().any(|(column, _)| column == "svix_id"),
        "{columns:?}"
    );
    columns
}

/// Whether `row` fits the data source (else Tinybird quarantines it).
fn fits(row: &Value, extra_columns: &[String]) -> bool {
    row.is_object()
        && schema().iter().all(|(column, string)| {
            let field = &row[column];
            if *string {
                field.is_string()
            } else {
                field.is_i64()
            }
        })
        && extra_columns.iter().all(|column| !row[column].is_null())
}

#[derive(Clone)]
pub struct Tinybird {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Tinybird {
    pub async fn start(token: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            ..State::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::new(10 * MAX_REQUEST_BYTES))
                .route("/v0/events", web::post().to(events))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { url, state }
    }

    /// The next requests get these answers (429s or 5xx), one each, in order.
    pub fn refuse(&self, statuses: &[u16]) {
        self.state.lock().unwrap().refusals = statuses.to_vec();
    }

    /// The data source gets a column Roster's rows lack: they are quarantined.
    pub fn add_column(&self, column: &str) {
        self.state
            .lock()
            .unwrap()
            .extra_columns
            .push(column.to_owned());
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    pub fn every_request_waited(&self) -> bool {
        self.state.lock().unwrap().waited.iter().all(|w| *w)
    }

    /// Everything appended to `datasource`, duplicates included.
    pub fn rows(&self, datasource: &str) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state.rows.get(datasource).cloned().unwrap_or_default()
    }

    /// What a merge of the ReplacingMergeTree leaves: one row per svix-id.
    pub fn deduplicated(&self, datasource: &str) -> BTreeMap<String, Value> {
        self.rows(datasource)
            .into_iter()
            .map(|row| (row["svix_id"].as_str().unwrap_or_default().to_owned(), row))
            .collect()
    }
}

async fn events(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .into_owned()
            .collect();
    let mut state = state.lock().unwrap();
    state.requests += 1;
    let bearer = format!("Bearer {}", state.token);
    if request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some(&bearer)
    {
        return HttpResponse::Forbidden().json(json!({ "error": "invalid authentication token" }));
    }
    let Some(name) = query.get("name").cloned() else {
        return HttpResponse::BadRequest()
            .json(json!({ "error": "The name parameter is required" }));
    };
    if !state.refusals.is_empty() {
        let status = state.refusals.remove(0);
        if status == 429 {
            return HttpResponse::TooManyRequests()
                .insert_header(("X-RateLimit-Limit", "100"))
                .insert_header(("X-RateLimit-Remaining", "0"))
                .insert_header(("X-RateLimit-Reset", "1"))
                .insert_header(("Retry-After", "1"))
                .json(json!({ "error": "Too many requests" }));
        }
        let status = actix_web::http::StatusCode::from_u16(status).unwrap();
        return HttpResponse::build(status).json(json!({ "error": "try again" }));
    }
    if body.len() > MAX_REQUEST_BYTES {
        return HttpResponse::PayloadTooLarge()
            .json(json!({ "error": "Request Entity Too Large" }));
    }
    let wait = query.get("wait").map(String::as_str) == Some("true");
    state.waited.push(wait);
    let (mut successful, mut quarantined) = (0, 0);
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Value>(line) {
            Ok(row) if fits(&row, &state.extra_columns) => {
                state.rows.entry(name.clone()).or_default().push(row);
                successful += 1;
            }
            _ => quarantined += 1,
        }
    }
    if wait {
        HttpResponse::Ok()
            .json(json!({ "successful_rows": successful, "quarantined_rows": quarantined }))
    } else {
        HttpResponse::Accepted()
            .json(json!({ "successful_rows": successful, "quarantined_rows": quarantined }))
    }
}
