//! The dashboard: server-rendered pages at `/`, behind the API key (a signed session
//! cookie, CSRF tokens on every form), with the page templates and the stylesheet
//! embedded in the binary. It reads the same queries as the API.

mod analytics;
mod audience;
mod campaigns;
pub mod charts;
mod contact;
mod emails;
mod events;
mod login;
mod preview;
mod segments;
pub mod session;
mod session_store;
mod webhooks;
mod workflows;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use actix_web::{HttpResponse, ResponseError, get, web};
use minijinja::{AutoEscape, Environment, Value};

use crate::contacts::ContactError;
use crate::input::{InputError, Invalid};
pub use crate::web::html_escape;

/// The page templates, compiled once.
pub struct Views {
    env: Environment<'static>,
}

const VIEWS: [(&str, &str); 17] = [
    ("layout.html", include_str!("views/layout.html")),
    ("login.html", include_str!("views/login.html")),
    ("audience.html", include_str!("views/audience.html")),
    ("contact.html", include_str!("views/contact.html")),
    ("events.html", include_str!("views/events.html")),
    ("event.html", include_str!("views/event.html")),
    ("workflows.html", include_str!("views/workflows.html")),
    ("emails.html", include_str!("views/emails.html")),
    (
        "email_activity.html",
        include_str!("views/email_activity.html"),
    ),
    ("analytics.html", include_str!("views/analytics.html")),
    ("preview.html", include_str!("views/preview.html")),
    ("segments.html", include_str!("views/segments.html")),
    ("segment.html", include_str!("views/segment.html")),
    (
        "segment_matches.html",
        include_str!("views/segment_matches.html"),
    ),
    ("campaigns.html", include_str!("views/campaigns.html")),
    ("campaign.html", include_str!("views/campaign.html")),
    ("webhooks.html", include_str!("views/webhooks.html")),
];

impl Views {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, source) in VIEWS {
            env.add_template(name, source)
                .expect("dashboard templates compile");
        }
        Self { env }
    }

    /// Renders a page; a template error is a bug, answered with a plain 500.
    pub fn render(&self, name: &str, context: Value) -> Result<HttpResponse, DashboardError> {
        let html = self
            .env
            .get_template(name)
            .and_then(|template| template.render(context))
            .map_err(|e| DashboardError::Unexpected(anyhow::anyhow!("rendering {name}: {e:#}")))?;
        Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((CACHE_CONTROL, "no-store"))
            .body(html))
    }
}

impl Default for Views {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a page is not shown.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("log in first")]
    LoginNeeded { next: String },
    #[error("this form has expired; reload the page and try again")]
    Forbidden,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("the database is unavailable; try again in a minute")]
    Unavailable(#[source] anyhow::Error),
    #[error("something went wrong")]
    Unexpected(#[source] anyhow::Error),
}

impl From<sqlx::Error> for DashboardError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_bad_data(&error) {
            Self::BadRequest("A value is too long or out of range to be stored.".to_owned())
        } else if crate::db::is_transient(&error) {
            Self::Unavailable(error.into())
        } else {
            Self::Unexpected(error.into())
        }
    }
}

impl From<Invalid> for DashboardError {
    fn from(invalid: Invalid) -> Self {
        match invalid.field {
            Some(field) => Self::BadRequest(format!("{field}: {}", invalid.message)),
            None => Self::BadRequest(invalid.message),
        }
    }
}

impl From<InputError> for DashboardError {
    fn from(error: InputError) -> Self {
        match error {
            InputError::Invalid(invalid) => invalid.into(),
            InputError::Database(error) => error.into(),
        }
    }
}

impl From<ContactError> for DashboardError {
    fn from(error: ContactError) -> Self {
        match error {
            ContactError::Invalid(invalid) => invalid.into(),
            ContactError::Taken => Self::BadRequest(error.to_string()),
            ContactError::Changed => Self::Unavailable(error.into()),
            ContactError::Database(error) => error.into(),
        }
    }
}

impl ResponseError for DashboardError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoginNeeded { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::LoginNeeded { next } = self {
            let target = format!(
                "/login?next={}",
                url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            return HttpResponse::SeeOther()
                .insert_header((LOCATION, target))
                .finish();
        }
        if let Self::Unexpected(error) = self {
            tracing::error!(
                error = crate::telemetry::error_chain(error.as_ref()),
                "dashboard page failed"
            );
        }
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Roster</title><link rel=\"stylesheet\" href=\"/assets/roster.css\"></head>\
             <body><main class=\"login\"><div class=\"card\"><h1>{}</h1><p>{}</p><p><a href=\"/\">Back to the audience</a></p></div></main></body></html>",
            self.status_code().canonical_reason().unwrap_or("Error"),
            html_escape(&self.to_string())
        );
        HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .body(body)
    }
}

#[get("/assets/roster.css")]
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("assets/roster.css"))
}

/// A `303 See Other` to `location`, after a form.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location.to_owned()))
        .finish()
}

/// A redirect to `path` that shows `notice` there.
pub fn see_other_with_notice(path: &str, notice: &str) -> HttpResponse {
    see_other(&link(path, &[("notice", Some(notice))]))
}

/// `path` with `pairs` as its query string (empty values left out), URL-encoded.
pub fn link(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            query.append_pair(key, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// The distinct values of `table.column`, read by skip scan of an index that starts
/// with the column: a few probes, not a read of the table.
pub async fn distinct_values(
    pool: &sqlx::PgPool,
    table: &'static str,
    column: &'static str,
) -> sqlx::Result<Vec<String>> {
    let sql = format!(
        "with recursive v(value) as (
             (select {column} from {table} where {column} is not null order by {column} limit 1)
             union all
             select (select {column} from {table} where {column} > v.value order by {column} limit 1)
             from v where v.value is not null
         )
         select value from v where value is not null limit 100"
    );
    // `table` and `column` are names written in this crate, never input.
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
}

/// Mounts the dashboard's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::FormConfig::default().limit(64 * 1024))
        .service(stylesheet)
        .service(login::login_page)
        .service(login::log_in)
        .service(login::log_out)
        .service(audience::audience)
        .service(audience::send_test_event)
        .service(contact::contact_page)
        .service(contact::change_subscription)
        .service(contact::send_test_email)
        .service(events::events_page)
        .service(events::event_page)
        .service(workflows::workflows_page)
        .service(emails::emails_page)
        .service(emails::replay_job)
        .service(analytics::analytics_page)
        .service(preview::preview_page)
        .service(segments::segments_page)
        .service(segments::save_segment)
        .service(segments::segment_page)
        .service(segments::change_segment)
        .service(segments::remove_segment)
        .service(campaigns::campaigns_page)
        .service(campaigns::create)
        .service(campaigns::campaign_page)
        .service(campaigns::test_send)
        .service(campaigns::send_now)
        .service(campaigns::cancel)
        .service(webhooks::webhooks_page)
        .service(webhooks::enable);
}
