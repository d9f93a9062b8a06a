//! The operators of a property condition, by the property's type, and the value each
//! takes.

use serde_json::Value;

use super::filter::{MAX_DAYS, Scalar, Test};
use crate::contacts::properties::{MAX_STRING_CHARS, PropertyType};
use crate::input::parse_date_text;

pub fn operators(kind: PropertyType) -> &'static [&'static str] {
    match kind {
        PropertyType::String => &[
            "equals",
            "notEquals",
            "contains",
            "startsWith",
            "isEmpty",
            "isNotEmpty",
        ],
        PropertyType::Number => &[
            "equals",
            "notEquals",
            "greaterThan",
            "lessThan",
            "isEmpty",
            "isNotEmpty",
        ],
        PropertyType::Boolean => &["equals", "notEquals", "isEmpty", "isNotEmpty"],
        PropertyType::Date => &["before", "after", "withinLastDays", "isEmpty", "isNotEmpty"],
    }
}

pub(super) enum Why {
    Operator,
    Value(String),
}

pub(super) fn test(operator: &str, kind: PropertyType, value: &Value) -> Result<Test, Why> {
    if !operators(kind).contains(&operator) {
        return Err(Why::Operator);
    }
    let needs = |what: &str| Why::Value(format!("`value` must be {what} for `{operator}`."));
    Ok(match operator {
        "isEmpty" | "isNotEmpty" if !value.is_null() => {
            return Err(Why::Value(format!("`{operator}` takes no `value`.")));
        }
        "isEmpty" => Test::IsEmpty,
        "isNotEmpty" => Test::IsNotEmpty,
        "equals" | "notEquals" => {
            let scalar = match (kind, value) {
                (PropertyType::String, Value::String(text)) => Scalar::Text(short_text(text)?),
                (PropertyType::Number, Value::Number(_)) => Scalar::Number(number(value)?),
                (PropertyType::Boolean, Value::Bool(b)) => Scalar::Bool(*b),
                (PropertyType::String, _) => return Err(needs("a string")),
                (PropertyType::Number, _) => return Err(needs("a number")),
                _ => return Err(needs("true or false")),
            };
            if operator == "equals" {
                Test::Equals(scalar)
            } else {
                Test::NotEquals(scalar)
            }
        }
        "contains" | "startsWith" => {
            let Value::String(text) = value else {
                return Err(needs("a string"));
            };
            let text = short_text(text)?;
            if operator == "contains" {
                Test::Contains(text)
            } else {
                Test::StartsWith(text)
            }
        }
        "greaterThan" | "lessThan" => {
            let n = number(value)?;
            if operator == "greaterThan" {
                Test::GreaterThan(n)
            } else {
                Test::LessThan(n)
            }
        }
        "before" | "after" => {
            let at = value
                .as_str()
                .and_then(|text| parse_date_text(text.trim()))
                .ok_or_else(|| needs("a date such as 2026-01-31 or 2026-01-31T00:00:00Z"))?;
            if operator == "before" {
                Test::Before(at)
            } else {
                Test::After(at)
            }
        }
        _ => Test::WithinLastDays(
            days(value)
                .ok_or_else(|| needs(&format!("a whole number of days from 1 to {MAX_DAYS}")))?,
        ),
    })
}

fn short_text(text: &str) -> Result<String, Why> {
    if text.contains('\0') {
        return Err(Why::Value(
            "`value` must not hold a NUL character.".to_owned(),
        ));
    }
    if text.chars().count() > MAX_STRING_CHARS {
        return Err(Why::Value(format!(
            "`value` must be at most {MAX_STRING_CHARS} characters long."
        )));
    }
    Ok(text.to_owned())
}

/// A JSON number's text (exact, for `numeric`), if it is a finite number.
fn number(value: &Value) -> Result<String, Why> {
    match value {
        Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(n.to_string()),
        _ => Err(Why::Value("`value` must be a number.".to_owned())),
    }
}

pub(super) fn days(value: &Value) -> Option<i64> {
    value.as_i64().filter(|days| (1..=MAX_DAYS).contains(days))
}
