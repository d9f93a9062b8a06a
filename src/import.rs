//! `roster import FILE.csv`: brings an audience in from a Loops-style CSV export.
//! Columns `email`, `firstName`, `lastName`, `userId`, `userGroup`, `subscribed`,
//! `source`, `notes` and `mailingLists` (IDs separated by `;`) are the contact's; any
//! other column is a custom property, created when missing with the type its values
//! share (number, boolean, date, else string). Each row is found by `userId`, then
//! `email`, and updated or created exactly as `PUT /api/v1/contacts/update` does, so a
//! second run changes nothing; an empty cell leaves the field as it is. A row that
//! does not pass is reported with its line number and skipped, and each row is written
//! whole or not at all. `subscribed` can unsubscribe but never resubscribes, and
//! columns Roster sets itself (`createdAt`, `id`) are left out. No workflow starts: an
//! import is not a sign-up.

use std::path::Path;

use serde_json::{Map, Value};
use sqlx::{Acquire, PgPool};

use crate::config::ConfigFile;
use crate::contacts::ContactError;
use crate::contacts::input::ContactInput;
use crate::contacts::properties::{
    CustomProperty, NewPropertyError, PropertyType, check_new_name, create_property,
    list_custom_properties, parse_date,
};
use crate::contacts::write::{Change, Write, upsert};

/// `source` of the contacts an import creates, unless the file has a `source` column.
const IMPORT_SOURCE: &str = "Import";

/// Whether a column is a custom property: not the contact's own, nor a built-in or
/// reserved name that Roster sets itself (`createdAt`, `id`, ... in a Loops export),
/// which the import leaves out.
fn is_custom(column: &str) -> bool {
    !CONTACT_COLUMNS.contains(&column) && check_new_name(column).is_ok()
}

/// The contact's own columns; every other column is a custom property. `export`
/// writes them too.
pub const CONTACT_COLUMNS: [&str; 9] = [
    "email",
    "firstName",
    "lastName",
    "userId",
    "userGroup",
    "subscribed",
    "source",
    "notes",
    "mailingLists",
];

#[derive(Debug, Default)]
pub struct Summary {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    /// Line number and why.
    pub skipped: Vec<(u64, String)>,
    /// Custom properties the import created, with their types.
    pub new_properties: Vec<(String, PropertyType)>,
}

/// Imports `path`; `progress` is told each row done (and first the number of rows).
pub async fn import_csv(
    pool: &PgPool,
    config: &ConfigFile,
    path: &Path,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let headers = read_headers(path)?;
    let (rows, types) = survey(path, &headers)?;
    progress.set_length(rows);
    // The file is read before the database is touched: a file that cannot be imported
    // changes nothing.
    crate::db::migrate(pool).await?;

    // Custom columns: create the missing properties (their types from the survey).
    let mut conn = pool.acquire().await?;
    let existing = list_custom_properties(&mut conn).await?;
    for (column, kind) in headers.iter().zip(&types) {
        let Some(kind) = kind else { continue };
        if !existing.iter().any(|p| &p.name == column) {
            create_property(&mut conn, column, *kind)
                .await
                .map_err(|e| anyhow::anyhow!("column {column:?}: {e}"))?;
            summary.new_properties.push((column.clone(), *kind));
        }
    }
    let custom = list_custom_properties(&mut conn).await?;

    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_path(path)?;
    for record in reader.records() {
        summary.rows += 1;
        progress.inc(1);
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |p| p.line());
                summary.skipped.push((line, error.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let input = row_object(&headers, &record, &custom).and_then(|row| {
            ContactInput::parse(&row, &custom, config, &[]).map_err(|e| e.to_string())
        });
        let input = match input {
            Ok(input) => input,
            Err(why) => {
                summary.skipped.push((line, why));
                continue;
            }
        };
        // One transaction a row: a row is written whole or not at all, and the person's
        // locks are held only while their row is written.
        let mut tx = conn.begin().await?;
        // No workflows start: an import is not a sign-up.
        match upsert(&mut tx, &input, Write::Upsert, IMPORT_SOURCE).await {
            Ok(upserted) => {
                tx.commit().await?;
                if upserted.change == Change::Created {
                    summary.created += 1;
                } else {
                    summary.updated += 1;
                }
            }
            Err(error @ (ContactError::Invalid(_) | ContactError::Taken)) => {
                tx.rollback().await?;
                summary.skipped.push((line, error.to_string()));
            }
            Err(error) => anyhow::bail!(
                "line {line}: {error}; the rows before it are imported, and importing the file again finishes the job"
            ),
        }
    }
    progress.finish_and_clear();
    Ok(summary)
}

fn read_headers(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)?;
    let headers: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    if !headers.iter().any(|h| h == "email") {
        anyhow::bail!("the file has no `email` column (the first line must name the columns)");
    }
    for (i, header) in headers.iter().enumerate() {
        if headers[..i].contains(header) {
            anyhow::bail!("column {header:?} appears twice");
        }
        if !CONTACT_COLUMNS.contains(&header.as_str())
            && let Err(NewPropertyError::NotCamelCase) = check_new_name(header)
        {
            anyhow::bail!(
                "column {header:?} cannot be a contact property: {}",
                NewPropertyError::NotCamelCase
            );
        }
    }
    Ok(headers)
}

/// Counts the rows and finds the type of each custom column's values: `None` for the
/// contact's own columns.
fn survey(path: &Path, headers: &[String]) -> anyhow::Result<(u64, Vec<Option<PropertyType>>)> {
    let custom: Vec<bool> = headers.iter().map(|h| is_custom(h)).collect();
    let mut seen = vec![false; headers.len()];
    let mut candidates: Vec<[bool; 3]> = vec![[true; 3]; headers.len()]; // number, boolean, date
    let mut rows = 0;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_path(path)?;
    for record in reader.records() {
        rows += 1;
        let Ok(record) = record else { continue };
        for (i, cell) in record.iter().map(str::trim).enumerate() {
            if i >= headers.len() || !custom[i] || cell.is_empty() {
                continue;
            }
            seen[i] = true;
            let [number, boolean, date] = &mut candidates[i];
            *number &= cell.parse::<serde_json::Number>().is_ok();
            *boolean &= parse_bool(cell).is_some();
            *date &= cell.contains('-') && parse_date(&Value::String(cell.to_owned())).is_some();
        }
    }
    let types = (0..headers.len())
        .map(|i| {
            custom[i].then(|| match (seen[i], candidates[i]) {
                (true, [true, _, _]) => PropertyType::Number,
                (true, [_, true, _]) => PropertyType::Boolean,
                (true, [_, _, true]) => PropertyType::Date,
                _ => PropertyType::String,
            })
        })
        .collect();
    Ok((rows, types))
}

fn parse_bool(cell: &str) -> Option<bool> {
    match cell.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A row as the JSON body the API would get: empty cells left out, `subscribed` and
/// custom values converted to their property's type, `mailingLists` split on `;`.
fn row_object(
    headers: &[String],
    record: &csv::StringRecord,
    custom: &[CustomProperty],
) -> Result<Map<String, Value>, String> {
    let mut row = Map::new();
    for (header, raw) in headers.iter().zip(record.iter()) {
        // A text value is kept as written (an export's cells read back unchanged); the
        // others are read without the spaces around them.
        let cell = raw.trim();
        if cell.is_empty() || !(CONTACT_COLUMNS.contains(&header.as_str()) || is_custom(header)) {
            continue;
        }
        let kind = custom.iter().find(|p| &p.name == header).map(|p| p.kind);
        let value = match (header.as_str(), kind) {
            ("subscribed", _) | (_, Some(PropertyType::Boolean)) => Value::Bool(
                parse_bool(cell)
                    .ok_or_else(|| format!("`{header}` must be true or false, not {cell:?}"))?,
            ),
            ("mailingLists", _) => Value::Object(
                cell.split(';')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(|id| (id.to_owned(), Value::Bool(true)))
                    .collect(),
            ),
            (_, Some(PropertyType::Number)) => Value::Number(
                cell.parse()
                    .map_err(|_| format!("`{header}` must be a number, not {cell:?}"))?,
            ),
            (_, Some(PropertyType::Date)) => Value::String(cell.to_owned()),
            _ => Value::String(raw.to_owned()),
        };
        // An old export must not resubscribe someone who unsubscribed since: `true`
        // only matters to new contacts, which start subscribed anyway.
        if header == "subscribed" && value == Value::Bool(true) {
            continue;
        }
        row.insert(header.clone(), value);
    }
    Ok(row)
}
