//! Clerk's Backend API (`CLERK_API_URL`, `CLERK_SECRET_KEY`): the user and waitlist
//! listings that `roster clerk backfill` and `roster clerk reconcile` read, paged 500
//! at a time, within Clerk's rate limit (1,000 requests per 10 s on production
//! instances, 100 on development ones), waiting out a 429 for its `Retry-After` and
//! retrying 5xx answers and network errors with backoff.

pub mod backfill;
pub mod reconcile;
pub mod schedule;

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

use crate::config::ClerkApiSettings;
use crate::db::storable_json::check_storable;

/// Users or entries per page: the most Clerk's listings give.
pub const PAGE: usize = 500;
/// Tries of one request that fails with a 5xx answer or no answer.
const ATTEMPTS: u32 = 8;
/// 429 answers waited out for one request before giving up.
const RATE_LIMITED_WAITS: u32 = 30;
/// The longest a page may be (500 users of a few KiB each fit many times).
const MAX_PAGE_BYTES: usize = 64 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a listing could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("CLERK_SECRET_KEY is not set: it is needed to read Clerk's Backend API")]
    NoSecretKey,
    #[error("Clerk's Backend API refused {path} ({status}): {message}")]
    Refused {
        path: String,
        status: u16,
        message: String,
    },
    #[error("Clerk's Backend API did not answer {path}: {reason}")]
    Unreachable { path: String, reason: String },
    #[error(
        "Clerk's Backend API answered {path} with something else than its documented shape: {reason}"
    )]
    Malformed { path: String, reason: String },
}

/// A client of the Backend API.
pub struct ClerkApi {
    http: reqwest::Client,
    base: Url,
    key: SecretString,
    limiter: DefaultDirectRateLimiter,
}

/// `{"errors": [{"message", "long_message", "code"}]}`: Clerk's error body.
#[derive(Deserialize)]
struct ClerkErrors {
    errors: Vec<ClerkError>,
}

#[derive(Deserialize)]
struct ClerkError {
    message: Option<String>,
    long_message: Option<String>,
    code: Option<String>,
}

/// `GET /v1/users/count`.
#[derive(Deserialize)]
struct TotalCount {
    total_count: u64,
}

/// `GET /v1/waitlist_entries`.
#[derive(Deserialize)]
struct WaitlistPage {
    data: Vec<Box<RawValue>>,
    total_count: u64,
}

impl ClerkApi {
    pub fn new(settings: &ClerkApiSettings) -> Result<Self, ApiError> {
        let key = settings.secret_key.clone().ok_or(ApiError::NoSecretKey)?;
        // Below Clerk's limit for the instance's kind, so a 429 is the exception.
        let per_10s = if key.expose_secret().starts_with("sk_live_") {
            900
        } else {
            90
        };
        let quota = Quota::with_period(Duration::from_secs(10) / per_10s)
            .expect("a period above zero")
            .allow_burst(NonZeroU32::new(10).expect("not zero"));
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Roster/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Unreachable {
                path: String::new(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            http,
            base: settings.url.clone(),
            key,
            limiter: RateLimiter::direct(quota),
        })
    }

    /// 500 users of `GET /v1/users` from `offset`, oldest first, of those created after
    /// `created_after` (ms) when given: each user as Clerk sent it.
    pub async fn users(
        &self,
        created_after: Option<i64>,
        offset: usize,
    ) -> Result<Vec<Box<RawValue>>, ApiError> {
        let path = "v1/users";
        let mut query = page_query(offset).to_vec();
        if let Some(ms) = created_after {
            query.push(("created_at_after", ms.to_string()));
        }
        let body = self.get(path, &query).await?;
        parse(path, &body)
    }

    /// The users of `ids` that Clerk has (`GET /v1/users?user_id=…`, at most 100 IDs).
    pub async fn users_by_id(&self, ids: &[String]) -> Result<Vec<Box<RawValue>>, ApiError> {
        let path = "v1/users";
        let mut query = vec![("limit", "100".to_owned())];
        query.extend(ids.iter().take(100).map(|id| ("user_id", id.clone())));
        let body = self.get(path, &query).await?;
        parse(path, &body)
    }

    /// `GET /v1/users/count`.
    pub async fn user_count(&self) -> Result<u64, ApiError> {
        let path = "v1/users/count";
        let body = self.get(path, &[]).await?;
        parse::<TotalCount>(path, &body).map(|count| count.total_count)
    }

    /// Page `offset / 500` of `GET /v1/waitlist_entries`, oldest first, and how many
    /// entries there are.
    pub async fn waitlist_entries(
        &self,
        offset: usize,
    ) -> Result<(Vec<Box<RawValue>>, u64), ApiError> {
        let path = "v1/waitlist_entries";
        let body = self.get(path, &page_query(offset)).await?;
        parse::<WaitlistPage>(path, &body).map(|page| (page.data, page.total_count))
    }

    /// `GET path`, within the rate limit, through 429s and transient failures.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<String, ApiError> {
        let mut url = self.base.join(path).map_err(|e| ApiError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let (mut failures, mut waits) = (0, 0);
        loop {
            self.limiter.until_ready().await;
            let sent = self
                .http
                .get(url.clone())
                .bearer_auth(self.key.expose_secret())
                .send()
                .await;
            let unreachable = |reason: String| ApiError::Unreachable {
                path: path.to_owned(),
                reason,
            };
            let retry_in = match sent {
                Ok(response) if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                    waits += 1;
                    if waits > RATE_LIMITED_WAITS {
                        return Err(unreachable(format!(
                            "still rate limited after {RATE_LIMITED_WAITS} waits"
                        )));
                    }
                    let wait = retry_after(&response).unwrap_or(Duration::from_secs(10));
                    tracing::info!(
                        path,
                        wait_s = wait.as_secs(),
                        "rate limited by Clerk: waiting"
                    );
                    wait
                }
                Ok(response) if response.status().is_success() => {
                    return read_body(response, path).await;
                }
                Ok(response) if response.status().is_server_error() => {
                    let status = response.status().as_u16();
                    failures += 1;
                    if failures >= ATTEMPTS {
                        return Err(unreachable(format!("{status} after {ATTEMPTS} tries")));
                    }
                    backoff(failures)
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = read_body(response, path).await.unwrap_or_default();
                    return Err(ApiError::Refused {
                        path: path.to_owned(),
                        status,
                        message: error_message(&body),
                    });
                }
                Err(error) => {
                    failures += 1;
                    if failures >= ATTEMPTS {
                        return Err(unreachable(error.without_url().to_string()));
                    }
                    backoff(failures)
                }
            };
            tokio::time::sleep(retry_in).await;
        }
    }
}

fn page_query(offset: usize) -> [(&'static str, String); 3] {
    [
        ("limit", PAGE.to_string()),
        ("offset", offset.to_string()),
        ("order_by", "+created_at".to_owned()),
    ]
}

/// 0.5 s, growing 1.5 times with each failure, at most a minute (Clerk's SDK policy).
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500)
        .mul_f64(1.5f64.powi(i32::try_from(failures).unwrap_or(i32::MAX) - 1))
        .min(Duration::from_secs(60))
}

/// `Retry-After` in seconds, at most 10 minutes.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(600)))
}

async fn read_body(mut response: reqwest::Response, path: &str) -> Result<String, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| ApiError::Unreachable {
        path: path.to_owned(),
        reason: e.without_url().to_string(),
    })? {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(ApiError::Malformed {
                path: path.to_owned(),
                reason: "the answer is over 64 MiB".into(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| ApiError::Malformed {
        path: path.to_owned(),
        reason: "the answer is not UTF-8".into(),
    })
}

/// Clerk's own words for an error, else the start of the body.
fn error_message(body: &str) -> String {
    match serde_json::from_str::<ClerkErrors>(body) {
        Ok(errors) => errors
            .errors
            .iter()
            .map(|e| {
                let text = e.long_message.as_deref().or(e.message.as_deref());
                format!(
                    "{} ({})",
                    text.unwrap_or("no message"),
                    e.code.as_deref().unwrap_or("no code")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => body.chars().take(200).collect(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(path: &str, body: &str) -> Result<T, ApiError> {
    let malformed = |reason: String| ApiError::Malformed {
        path: path.to_owned(),
        reason,
    };
    check_storable(body).map_err(|problem| malformed(problem.to_string()))?;
    serde_json::from_str(body).map_err(|e| malformed(e.to_string()))
}
