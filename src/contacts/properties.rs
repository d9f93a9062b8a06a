//! Contact properties as Loops has them: built-in ones and custom ones created through
//! the API, each with a type (string, number, boolean, date). Custom values live in
//! `contacts.properties`, normalised: dates as RFC 3339 strings in UTC.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;

use crate::input::{parse_date_text, storable_time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PropertyType {
    String,
    Number,
    Boolean,
    Date,
}

impl PropertyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Date => "date",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "string" => Some(Self::String),
            "number" => Some(Self::Number),
            "boolean" => Some(Self::Boolean),
            "date" => Some(Self::Date),
            _ => None,
        }
    }
}

/// The properties every contact has, in the order Loops lists them. `notes` is kept
/// with the custom values; the others are columns.
pub const BUILT_IN: [(&str, PropertyType); 9] = [
    ("firstName", PropertyType::String),
    ("lastName", PropertyType::String),
    ("email", PropertyType::String),
    ("notes", PropertyType::String),
    ("source", PropertyType::String),
    ("userGroup", PropertyType::String),
    ("userId", PropertyType::String),
    ("subscribed", PropertyType::Boolean),
    ("createdAt", PropertyType::Date),
];

/// Names no custom property may take: Loops' reserved names, the fields of a request
/// body, and every field Roster's contact JSON uses besides the built-in properties
/// (`Contact::to_json` and the API's contact details), which a custom property at top
/// level would otherwise shadow.
const RESERVED: [&str; 16] = [
    "isClerkUser",
    "clerk",
    "id",
    "listId",
    "softDeleteAt",
    "teamId",
    "updatedAt",
    "mailingLists",
    "optInStatus",
    "eventName",
    "eventProperties",
    "unsubscribedAt",
    "graduatedAt",
    "waitlistStatus",
    "waitlistJoinedAt",
    "properties",
];

/// The longest string value Loops takes.
pub const MAX_STRING_CHARS: usize = 500;

/// A custom property.
#[derive(Debug, Clone)]
pub struct CustomProperty {
    pub name: String,
    pub kind: PropertyType,
}

/// "favoriteColor" → "Favorite Color", as Loops labels properties.
pub fn label(name: &str) -> String {
    let mut label = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if i == 0 {
            label.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            label.push(' ');
            label.push(c);
        } else {
            label.push(c);
        }
    }
    label
}

pub async fn list_custom_properties(conn: &mut PgConnection) -> sqlx::Result<Vec<CustomProperty>> {
    let rows = sqlx::query!("select name, type from contact_properties order by created_at, name")
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            PropertyType::parse(&row.r#type).map(|kind| CustomProperty {
                name: row.name,
                kind,
            })
        })
        .collect())
}

/// Why a property cannot be created.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NewPropertyError {
    #[error(
        "Property names must be camelCase (a lowercase letter, then letters and digits), like `planName`."
    )]
    NotCamelCase,
    #[error("`{0}` is a reserved name.")]
    Reserved(String),
    #[error("Property already exists.")]
    Exists,
}

/// Checks a new property's name against the naming rules and the reserved names.
pub fn check_new_name(name: &str) -> Result<(), NewPropertyError> {
    let mut chars = name.chars();
    let camel = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && name.len() <= 100;
    if !camel {
        return Err(NewPropertyError::NotCamelCase);
    }
    if RESERVED.contains(&name) {
        return Err(NewPropertyError::Reserved(name.to_owned()));
    }
    if BUILT_IN.iter().any(|(built_in, _)| *built_in == name) {
        return Err(NewPropertyError::Exists);
    }
    Ok(())
}

pub async fn create_property(
    conn: &mut PgConnection,
    name: &str,
    kind: PropertyType,
) -> Result<(), PropertyStoreError> {
    check_new_name(name)?;
    let inserted = sqlx::query!(
        "insert into contact_properties (name, type) values ($1, $2) on conflict (name) do nothing",
        name,
        kind.as_str()
    )
    .execute(conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(NewPropertyError::Exists.into());
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PropertyStoreError {
    #[error(transparent)]
    Invalid(#[from] NewPropertyError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Checks `value` against the property's type and normalises it; `null` clears.
pub fn coerce_value(kind: PropertyType, value: &Value) -> Result<Value, String> {
    match (kind, value) {
        (_, Value::Null) => Ok(Value::Null),
        (PropertyType::String, Value::String(text)) if text.chars().count() > MAX_STRING_CHARS => {
            Err(format!("must be at most {MAX_STRING_CHARS} characters long"))
        }
        (PropertyType::String, Value::String(_))
        | (PropertyType::Number, Value::Number(_))
        | (PropertyType::Boolean, Value::Bool(_)) => Ok(value.clone()),
        (PropertyType::Date, value) => parse_date(value)
            .map(|date| Value::String(date.to_rfc3339_opts(SecondsFormat::Millis, true)))
            .ok_or_else(|| {
                "must be a date: a Unix timestamp in milliseconds or a date such as 2024-01-17 or 2024-01-17T10:21:11Z".to_owned()
            }),
        (kind, _) => Err(format!("must be a {}", kind.as_str())),
    }
}

/// A date as Loops takes it: Unix milliseconds (a number or a string of digits), or an
/// ISO-style date with an optional time and offset (UTC when none).
pub fn parse_date(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .and_then(storable_time),
        Value::String(text) => {
            let text = text.trim();
            if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
                return text
                    .parse()
                    .ok()
                    .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
                    .and_then(storable_time);
            }
            parse_date_text(text)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_split_camel_case() {
        assert_eq!(label("favoriteColor"), "Favorite Color");
        assert_eq!(label("plan"), "Plan");
    }

    #[test]
    fn names_must_be_camel_case_and_not_reserved() {
        assert_eq!(check_new_name("planName"), Ok(()));
        assert_eq!(
            check_new_name("PlanName"),
            Err(NewPropertyError::NotCamelCase)
        );
        assert_eq!(
            check_new_name("plan_name"),
            Err(NewPropertyError::NotCamelCase)
        );
        assert_eq!(check_new_name(""), Err(NewPropertyError::NotCamelCase));
        assert_eq!(
            check_new_name("listId"),
            Err(NewPropertyError::Reserved("listId".into()))
        );
        assert_eq!(check_new_name("firstName"), Err(NewPropertyError::Exists));
    }

    #[test]
    fn values_are_checked_against_their_type() {
        assert_eq!(coerce_value(PropertyType::Number, &json!(3)), Ok(json!(3)));
        assert!(coerce_value(PropertyType::Number, &json!("3")).is_err());
        assert!(coerce_value(PropertyType::Boolean, &json!("true")).is_err());
        assert_eq!(
            coerce_value(PropertyType::String, &Value::Null),
            Ok(Value::Null)
        );
        assert!(coerce_value(PropertyType::String, &json!("x".repeat(501))).is_err());
    }

    #[test]
    fn dates_take_loops_forms_and_are_stored_in_utc() {
        let date = |v: Value| coerce_value(PropertyType::Date, &v);
        assert_eq!(
            date(json!(1705486871000_i64)),
            Ok(json!("2024-01-17T10:21:11.000Z"))
        );
        assert_eq!(
            date(json!("1705486871000")),
            Ok(json!("2024-01-17T10:21:11.000Z"))
        );
        assert_eq!(
            date(json!("2024-01-17")),
            Ok(json!("2024-01-17T00:00:00.000Z"))
        );
        assert_eq!(
            date(json!("2024-01-17 10:21")),
            Ok(json!("2024-01-17T10:21:00.000Z"))
        );
        assert_eq!(
            date(json!("2024-01-17T12:21:11+02:00")),
            Ok(json!("2024-01-17T10:21:11.000Z"))
        );
        assert!(date(json!("next tuesday")).is_err());
        assert!(date(json!(true)).is_err());
    }
}
