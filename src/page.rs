//! Cursor pagination of every list (API and dashboard): newest first, with the cursor the last item's key, so rows added
//! while a client pages never shift the pages after the one it holds.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::input::Invalid;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, Invalid> {
        match self.limit {
            None => Ok(50),
            Some(limit) if (1..=200).contains(&limit) => Ok(limit),
            Some(_) => Err(Invalid::field("limit", "`limit` must be from 1 to 200.")),
        }
    }

    /// The cursor parsed by `parse`; a cursor that does not parse is a 400.
    pub fn cursor<T>(&self, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, Invalid> {
        match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => Ok(None),
            Some(cursor) => parse(cursor).map(Some).ok_or_else(|| {
                Invalid::field("cursor", "`cursor` is not a cursor this list gave.")
            }),
        }
    }
}

/// A page of a list: `{"data": [...], "nextCursor": ...}`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The page of `limit + 1` fetched rows, each shown as `show` makes it.
pub fn page_of<T, U>(
    mut rows: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> String,
    show: impl Fn(&T) -> U,
) -> Page<U> {
    let limit = usize::try_from(limit).unwrap_or(50);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(&cursor_of)
    } else {
        None
    };
    Page {
        data: rows.iter().map(show).collect(),
        next_cursor,
    }
}

/// `page_of` as JSON.
pub fn page<T>(
    rows: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> String,
    show: impl Fn(&T) -> Value,
) -> Value {
    let page = page_of(rows, limit, cursor_of, show);
    json!({ "data": page.data, "nextCursor": page.next_cursor })
}
