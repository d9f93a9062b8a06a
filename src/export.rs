//! Exporting the audience as CSV, for `GET /api/v1/contacts/export` and `roster
//! export`: Loops' column names (those `roster import` reads, and `createdAt`), then
//! one column per custom property. Everyone, or a segment's contacts, or a list's, or
//! both at once; newest first, a page at a time, never the whole audience in memory.
//! A file exported and imported again changes nothing.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::ConfigFile;
use crate::contacts::Contact;
use crate::contacts::properties::{CustomProperty, list_custom_properties};
use crate::import::CONTACT_COLUMNS;
use crate::input::{InputError, Invalid};
use crate::segments::check_filter;
use crate::segments::filter::{Condition, Filter};
use crate::segments::store::{count_matching, find_segment, matching_contacts};

/// Contacts read and written per page.
const PAGE: i64 = 1000;

/// Who is exported: the contacts of `segment` (its ID) and on `list`, either or both.
pub async fn audience(
    pool: &PgPool,
    config: &ConfigFile,
    segment: Option<&str>,
    list: Option<&str>,
) -> Result<Filter, InputError> {
    let mut conditions = Vec::new();
    let mut conn = pool.acquire().await?;
    if let Some(segment) = segment {
        let no_segment = || {
            Invalid::field(
                "segment",
                format!("There is no segment with the ID {segment:?}."),
            )
        };
        let id: Uuid = segment.parse().map_err(|_| no_segment())?;
        let saved = find_segment(&mut conn, id).await?.ok_or_else(no_segment)?;
        conditions.push(Condition::Group(
            check_filter(&mut conn, config, &saved.filter).await?,
        ));
    }
    if let Some(list) = list {
        if config.list(list).is_none() {
            return Err(Invalid::field(
                "list",
                format!("There is no mailing list with the ID {list:?}."),
            )
            .into());
        }
        conditions.push(Condition::MailingList {
            id: list.to_owned(),
            negate: false,
        });
    }
    Ok(Filter {
        match_all: true,
        conditions,
    })
}

/// The CSV of an audience, a page at a time: first the header, then the rows.
pub struct CsvPages {
    pool: PgPool,
    /// The lists of the config file: only those are written (`roster import` refuses
    /// any other).
    lists: Vec<String>,
    filter: Filter,
    custom: Vec<CustomProperty>,
    started: bool,
    after: Option<Uuid>,
    done: bool,
}

impl CsvPages {
    pub async fn new(pool: &PgPool, config: &ConfigFile, filter: Filter) -> sqlx::Result<Self> {
        let custom = list_custom_properties(&mut *pool.acquire().await?).await?;
        Ok(Self {
            pool: pool.clone(),
            lists: config.lists.iter().map(|list| list.id.clone()).collect(),
            filter,
            custom,
            started: false,
            after: None,
            done: false,
        })
    }

    /// How many contacts the export holds (as of now).
    pub async fn count(&self) -> sqlx::Result<i64> {
        count_matching(&self.pool, &self.filter).await
    }

    /// The next chunk of CSV and how many contacts it holds; `None` after the last.
    pub async fn next_chunk(&mut self) -> sqlx::Result<Option<(Vec<u8>, usize)>> {
        if self.done {
            return Ok(None);
        }
        let mut writer = csv::Writer::from_writer(Vec::new());
        if !self.started {
            self.started = true;
            let header = CONTACT_COLUMNS
                .iter()
                .copied()
                .chain(["createdAt"])
                .chain(self.custom.iter().map(|p| p.name.as_str()));
            writer.write_record(header).map_err(to_io)?;
        }
        let contacts = matching_contacts(&self.pool, &self.filter, self.after, PAGE).await?;
        self.done = contacts.len() < PAGE as usize;
        self.after = contacts.last().map(|c| c.id);
        for contact in &contacts {
            writer
                .write_record(row(contact, &self.custom, &self.lists))
                .map_err(to_io)?;
        }
        let bytes = writer.into_inner().map_err(|e| to_io(e.into_error()))?;
        Ok(Some((bytes, contacts.len())))
    }
}

fn to_io(error: impl Into<std::io::Error>) -> sqlx::Error {
    sqlx::Error::Io(error.into())
}

/// One contact's cells, in the header's order.
fn row(contact: &Contact, custom: &[CustomProperty], known_lists: &[String]) -> Vec<String> {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let lists: Vec<&str> = contact
        .mailing_lists
        .as_object()
        .map(|lists| {
            lists
                .iter()
                .filter(|(id, on)| on.as_bool() == Some(true) && known_lists.contains(id))
                .map(|(id, _)| id.as_str())
                .collect()
        })
        .unwrap_or_default();
    let property = |name: &str| match contact.properties.get(name) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    let mut cells = vec![
        contact.email.clone(),
        text(&contact.first_name),
        text(&contact.last_name),
        text(&contact.user_id),
        text(&contact.user_group),
        contact.subscribed.to_string(),
        contact.source.clone(),
        property("notes"),
        lists.join(";"),
        contact
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    ];
    cells.extend(custom.iter().map(|p| property(&p.name)));
    cells
}
