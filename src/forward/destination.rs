//! Where forwarded events go, and how each destination takes a batch.
//!
//! Tinybird's Events API: `POST {url}/v0/events?name={datasource}&wait=true`, the
//! batch as NDJSON, `Authorization: Bearer {token}`. With `wait=true` a 200 means the
//! write was acknowledged by its database; a 429 carries `Retry-After` (seconds) and
//! `X-RateLimit-Reset`.
//!
//! ClickHouse's HTTP interface: `POST {url}/?query=INSERT INTO {table} FORMAT
//! JSONEachRow`, the batch as one JSON object per line, the user and password by HTTP
//! basic authentication. A 200 means the rows were inserted.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::config::forward::ForwardSettings;

/// The longest Roster waits for a destination's answer.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a failing answer is kept in the error.
const KEPT_ANSWER_CHARS: usize = 300;
/// The wait after a 429 that names none.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Destination {
    kind: Kind,
    client: reqwest::Client,
}

#[derive(Clone)]
enum Kind {
    Tinybird {
        url: url::Url,
        token: SecretString,
    },
    ClickHouse {
        url: url::Url,
        user: String,
        password: Option<SecretString>,
    },
}

/// Why a destination did not take a batch.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("rate limited; retry after {0:?}")]
    RateLimited(Duration),
    #[error("{0}")]
    Failed(String),
}

impl Destination {
    /// The destinations `settings` configures (already checked by `config`).
    pub fn all(settings: &ForwardSettings) -> anyhow::Result<Vec<Self>> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Roster/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut all = Vec::new();
        if let Some(tinybird) = &settings.tinybird {
            let mut url = url::Url::parse(&tinybird.url)?.join("/v0/events")?;
            url.query_pairs_mut()
                .append_pair("name", &tinybird.datasource)
                .append_pair("wait", "true");
            all.push(Self {
                kind: Kind::Tinybird {
                    url,
                    token: tinybird.token.clone(),
                },
                client: client.clone(),
            });
        }
        if let Some(clickhouse) = &settings.clickhouse {
            let mut url = url::Url::parse(&clickhouse.url)?;
            url.query_pairs_mut()
                .append_pair(
                    "query",
                    &format!("INSERT INTO {} FORMAT JSONEachRow", clickhouse.table),
                )
                .append_pair("input_format_skip_unknown_fields", "1");
            all.push(Self {
                kind: Kind::ClickHouse {
                    url,
                    user: clickhouse.user.clone(),
                    password: clickhouse.password.clone(),
                },
                client,
            });
        }
        Ok(all)
    }

    /// The name the outbox and the metrics know it by.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Tinybird { .. } => "tinybird",
            Kind::ClickHouse { .. } => "clickhouse",
        }
    }

    /// Sends one batch, `lines` of JSON each ended by a newline. Returns how many of
    /// its rows the destination quarantined rather than stored (Tinybird's
    /// `quarantined_rows`: rows the data source's schema refused, kept in its
    /// `_quarantine` data source; sending them again would only quarantine them again).
    pub async fn post(&self, lines: String) -> Result<u64, Refusal> {
        let request = match &self.kind {
            Kind::Tinybird { url, token } => self
                .client
                .post(url.clone())
                .bearer_auth(token.expose_secret())
                .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson"),
            Kind::ClickHouse {
                url,
                user,
                password,
            } => self.client.post(url.clone()).basic_auth(
                user,
                password.as_ref().map(|p| p.expose_secret().to_owned()),
            ),
        };
        let response = request
            .body(lines)
            .send()
            .await
            // reqwest's error names the URL, never the token (a header) or password.
            .map_err(|error| Refusal::Failed(format!("{} unreachable: {error}", self.name())))?;
        let status = response.status();
        if status.is_success() {
            let quarantined = match self.kind {
                Kind::Tinybird { .. } => response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|answer| answer["quarantined_rows"].as_u64())
                    .unwrap_or(0),
                // An insert ClickHouse cannot store whole fails whole.
                Kind::ClickHouse { .. } => 0,
            };
            return Ok(quarantined);
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(Refusal::RateLimited(retry_after(response.headers())));
        }
        let answer: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(KEPT_ANSWER_CHARS)
            .collect();
        Err(Refusal::Failed(format!(
            "{} answered {}: {}",
            self.name(),
            status.as_u16(),
            answer.trim()
        )))
    }
}

/// How long a 429 asks to wait: `Retry-After`, else `X-RateLimit-Reset` (both in
/// seconds), else a second; at most an hour.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    let seconds = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
    };
    seconds("retry-after")
        .or_else(|| seconds("x-ratelimit-reset"))
        .map_or(DEFAULT_RATE_LIMIT_WAIT, |s| {
            Duration::from_secs_f64(s.min(3600.0))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_waits_as_it_says() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), DEFAULT_RATE_LIMIT_WAIT);
        headers.insert("x-ratelimit-reset", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(3));
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(2));
        headers.insert("retry-after", "-1".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(3));
        headers.insert("retry-after", "99999999".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(3600));
    }
}
