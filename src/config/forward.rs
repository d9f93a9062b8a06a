//! The `[forward.*]` tables: where stored Clerk events are forwarded for analytics at
//! scale, Tinybird's Events API and a ClickHouse HTTP endpoint. Secrets never appear in
//! `Debug` output or in problems.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardSettings {
    pub tinybird: Option<TinybirdSettings>,
    pub clickhouse: Option<ClickHouseSettings>,
}

/// `[forward.tinybird]`: `POST {url}/v0/events?name={datasource}`, NDJSON, bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinybirdSettings {
    /// The workspace's API host, e.g. `https://api.tinybird.co`.
    pub url: String,
    /// A token with append rights on the data source.
    pub token: SecretString,
    pub datasource: String,
}

/// `[forward.clickhouse]`: `INSERT INTO {table} FORMAT JSONEachRow` over HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseSettings {
    /// The HTTP interface, e.g. `http://clickhouse:8123`.
    pub url: String,
    /// `database.table` or `table`: a ReplacingMergeTree keyed by `svix_id`
    /// (`analytics/clickhouse/events.sql`).
    pub table: String,
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default)]
    pub password: Option<SecretString>,
}

fn default_user() -> String {
    "default".to_owned()
}

/// Every problem of the tables, naming the field; secrets are never shown.
pub(super) fn check(forward: &ForwardSettings) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(tinybird) = &forward.tinybird {
        check_url("forward.tinybird.url", &tinybird.url, &mut problems);
        if !is_header_safe(tinybird.token.expose_secret()) {
            problems.push(
                "forward.tinybird.token: a token of printable characters, without spaces".into(),
            );
        }
        if !is_identifier(&tinybird.datasource, false) {
            problems.push(
                "forward.tinybird.datasource: letters, digits and _, starting with a letter"
                    .to_owned(),
            );
        }
    }
    if let Some(clickhouse) = &forward.clickhouse {
        check_url("forward.clickhouse.url", &clickhouse.url, &mut problems);
        if !is_identifier(&clickhouse.table, true) {
            problems.push(
                "forward.clickhouse.table: a table name (letters, digits and _), \
                 optionally after its database and a dot"
                    .to_owned(),
            );
        }
        if let Some(password) = &clickhouse.password
            && password.expose_secret().chars().any(char::is_control)
        {
            problems.push("forward.clickhouse.password: no control characters".into());
        }
        if clickhouse.user.is_empty() || clickhouse.user.chars().any(char::is_control) {
            problems.push("forward.clickhouse.user: a user name without control characters".into());
        }
    }
    problems
}

/// What an HTTP header can carry as it is: printable ASCII, no spaces.
fn is_header_safe(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic())
}

fn check_url(field: &str, text: &str, problems: &mut Vec<String>) {
    match url::Url::parse(text) {
        Ok(url)
            if matches!(url.scheme(), "https" | "http")
                && url.host().is_some()
                && url.username().is_empty()
                && url.password().is_none()
                && url.query().is_none() => {}
        _ => problems.push(format!(
            "{field}: an http(s) URL without credentials or query (they have fields of their own)"
        )),
    }
}

/// A name safe to put in a URL or a query as it is: ASCII letters, digits and `_`,
/// starting with a letter or `_`; with `dotted`, one `database.` before it.
fn is_identifier(name: &str, dotted: bool) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match name.split_once('.') {
        Some((database, table)) if dotted => part(database) && part(table),
        Some(_) => false,
        None => part(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_identifiers() {
        assert!(is_identifier("clerk_events", false));
        assert!(is_identifier("analytics.clerk_events", true));
        for bad in ["", "1x", "a-b", "a b", "a.b.c", "x;drop", "é"] {
            assert!(!is_identifier(bad, true), "{bad}");
        }
        assert!(!is_identifier("a.b", false));
    }

    #[test]
    fn problems_name_the_field_and_never_the_secret() {
        let forward: ForwardSettings = toml::from_str(
            r#"
            [tinybird]
            url = "ftp://api.tinybird.co"
            token = "p.secret-token\n"
            datasource = "clerk events"
            [clickhouse]
            url = "http://user:pw@ch:8123"
            table = "db.t.x"
            password = "hunter2\u0000"
            "#,
        )
        .unwrap();
        let problems = check(&forward).join("\n");
        for field in [
            "forward.tinybird.url",
            "forward.tinybird.token",
            "forward.clickhouse.password",
            "forward.tinybird.datasource",
            "forward.clickhouse.url",
            "forward.clickhouse.table",
        ] {
            assert!(problems.contains(field), "{problems}");
        }
        assert!(!problems.contains("hunter2") && !problems.contains("secret-token"));
        let debug = format!("{forward:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("secret-token"),
            "{debug}"
        );
    }
}
