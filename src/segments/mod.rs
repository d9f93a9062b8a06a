//! Segments: saved filters over the audience (`filter` holds the grammar), evaluated
//! in PostgreSQL (`sql`), stored in `audience_segments` (`store`).

pub mod filter;
pub mod operators;
pub mod parse;
pub mod sql;
pub mod store;

use serde_json::Value;
use sqlx::PgConnection;

use crate::config::ConfigFile;
use crate::contacts::properties::list_custom_properties;
use crate::input::{InputError, Invalid};
use filter::{Catalog, Filter};

/// The longest segment name.
pub const MAX_NAME_CHARS: usize = 200;

/// Checks `value` as a filter against the custom properties `conn` sees and the lists
/// of the config file; faults name `filter.…`.
pub async fn check_filter(
    conn: &mut PgConnection,
    config: &ConfigFile,
    value: &Value,
) -> Result<Filter, InputError> {
    let custom = list_custom_properties(conn).await?;
    let catalog = Catalog {
        custom: &custom,
        lists: config.lists.iter().map(|list| list.id.as_str()).collect(),
    };
    let filter = parse::parse(value, &catalog, "filter")?;
    // The campaigns named, asked for only when there are some.
    let named = filter.campaign_references("filter");
    if !named.is_empty() {
        let ids: Vec<uuid::Uuid> = named.iter().map(|(id, _)| *id).collect();
        let known = sqlx::query_scalar!("select id from campaigns where id = any($1)", &ids)
            .fetch_all(&mut *conn)
            .await?;
        if let Some((id, path)) = named.iter().find(|(id, _)| !known.contains(id)) {
            let message = format!("There is no campaign with the ID \"{id}\".");
            return Err(Invalid::field(path.clone(), message).into());
        }
    }
    Ok(filter)
}

/// A segment name: trimmed, not empty, at most `MAX_NAME_CHARS`.
pub fn check_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Invalid::field(
            "name",
            format!("`name` must be 1 to {MAX_NAME_CHARS} characters long."),
        ));
    }
    Ok(name.to_owned())
}
