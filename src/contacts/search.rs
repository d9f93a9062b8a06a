//! Searching the audience: prefixes of the address and the names, and exact filters,
//! newest first, one keyset page at a time.

use serde::Deserialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::Contact;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ContactFilters {
    /// Start of the email address (case-insensitive).
    pub email: Option<String>,
    /// Start of the first name, the last name, or "first last" (case-insensitive).
    pub name: Option<String>,
    pub user_group: Option<String>,
    pub subscribed: Option<bool>,
    pub source: Option<String>,
    /// pending, invited, completed or rejected.
    pub waitlist_status: Option<String>,
}

/// Contacts matching `filters`, newest first, after `cursor` (a contact ID), at most
/// `limit`.
pub async fn search(
    pool: &PgPool,
    filters: &ContactFilters,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Contact>> {
    let mut query = QueryBuilder::<Postgres>::new("select * from ");
    match filters
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        // The matches of a name prefix come from the three name indexes first; left to
        // itself the planner would walk the whole table newest first looking for a rare
        // name (`offset 0` keeps the subquery from being merged into the outer one).
        Some(name) => {
            let pattern = starts_with_pattern(name);
            query
                .push("(select * from contacts where lower(first_name) like lower(")
                .push_bind(pattern.clone())
                .push(") or lower(last_name) like lower(")
                .push_bind(pattern.clone())
                .push(") or lower(first_name || ' ' || last_name) like lower(")
                .push_bind(pattern)
                .push(") offset 0) as contacts where true");
        }
        None => {
            query.push("contacts where true");
        }
    }
    if let Some(email) = filters
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        query
            .push(" and lower(email) like lower(")
            .push_bind(starts_with_pattern(email))
            .push(")");
    }
    if let Some(group) = &filters.user_group {
        query.push(" and user_group = ").push_bind(group.clone());
    }
    if let Some(subscribed) = filters.subscribed {
        query.push(" and subscribed = ").push_bind(subscribed);
    }
    if let Some(source) = &filters.source {
        query.push(" and source = ").push_bind(source.clone());
    }
    if let Some(status) = &filters.waitlist_status {
        query
            .push(" and waitlist_status = ")
            .push_bind(status.clone());
    }
    if let Some(cursor) = cursor {
        query.push(" and id < ").push_bind(cursor);
    }
    query.push(" order by id desc limit ").push_bind(limit);
    query.build_query_as().fetch_all(pool).await
}

/// A `LIKE` pattern for "starts with `text`", with `%`, `_` and `\` taken literally.
/// The queries lower it with PostgreSQL's `lower()`, as the indexes are.
pub fn starts_with_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
