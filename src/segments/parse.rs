//! Reading a filter's JSON into `filter`'s types, naming the condition at fault.

use serde_json::{Map, Value};

use super::filter::{
    Activity, ActivityTest, BUILT_IN, Catalog, Condition, Field, Filter, MAX_CONDITIONS, MAX_DAYS,
    MAX_DEPTH, Source, Target,
};
use super::operators::{Why, days, operators, test};
use crate::contacts::properties::{MAX_STRING_CHARS, PropertyType};
use crate::input::Invalid;

/// Parses `value` (at `path`, e.g. `filter`) into a checked filter.
pub fn parse(value: &Value, catalog: &Catalog<'_>, path: &str) -> Result<Filter, Invalid> {
    let mut count = 0;
    parse_group(value, catalog, path, 0, &mut count)
}

fn parse_group(
    value: &Value,
    catalog: &Catalog<'_>,
    path: &str,
    depth: usize,
    count: &mut usize,
) -> Result<Filter, Invalid> {
    let object = object(value, path, "an object with `match` and `conditions`")?;
    only_keys(object, path, &["match", "conditions"])?;
    let match_all = match object.get("match").and_then(Value::as_str) {
        Some("all") => true,
        Some("any") => false,
        _ => {
            return Err(Invalid::field(
                format!("{path}.match"),
                "`match` must be \"all\" or \"any\".",
            ));
        }
    };
    let Some(Value::Array(items)) = object.get("conditions") else {
        return Err(Invalid::field(
            format!("{path}.conditions"),
            "`conditions` must be an array.",
        ));
    };
    let mut conditions = Vec::with_capacity(items.len().min(MAX_CONDITIONS));
    for (i, item) in items.iter().enumerate() {
        let path = format!("{path}.conditions[{i}]");
        *count += 1;
        if *count > MAX_CONDITIONS {
            return Err(Invalid::field(
                path,
                format!("A filter holds at most {MAX_CONDITIONS} conditions."),
            ));
        }
        conditions.push(parse_condition(item, catalog, &path, depth, count)?);
    }
    Ok(Filter {
        match_all,
        conditions,
    })
}

fn parse_condition(
    value: &Value,
    catalog: &Catalog<'_>,
    path: &str,
    depth: usize,
    count: &mut usize,
) -> Result<Condition, Invalid> {
    let object = object(value, path, "a condition object")?;
    if object.contains_key("match") || object.contains_key("conditions") {
        if depth + 1 > MAX_DEPTH {
            return Err(Invalid::field(
                path,
                format!("Groups nest at most {MAX_DEPTH} deep."),
            ));
        }
        return parse_group(value, catalog, path, depth + 1, count).map(Condition::Group);
    }
    if object.contains_key("property") {
        return parse_property(object, catalog, path);
    }
    if object.contains_key("mailingList") {
        only_keys(object, path, &["mailingList", "negate"])?;
        let id = text(object, path, "mailingList")?;
        if !catalog.lists.contains(&id.as_str()) {
            return Err(Invalid::field(
                format!("{path}.mailingList"),
                format!("There is no mailing list with the ID {id:?}."),
            ));
        }
        let negate = negate(object, path)?;
        return Ok(Condition::MailingList { id, negate });
    }
    if object.contains_key("activity") {
        return parse_activity(object, path).map(Condition::Activity);
    }
    Err(Invalid::field(
        path,
        "A condition needs `property`, `mailingList`, `activity`, or `match` and `conditions` (a group).",
    ))
}

fn parse_property(
    object: &Map<String, Value>,
    catalog: &Catalog<'_>,
    path: &str,
) -> Result<Condition, Invalid> {
    only_keys(object, path, &["property", "operator", "value"])?;
    let name = text(object, path, "property")?;
    let field = field(&name, catalog).ok_or_else(|| {
        Invalid::field(
            format!("{path}.property"),
            format!("There is no contact property named {name:?}."),
        )
    })?;
    let operator = text(object, path, "operator")?;
    let value = object.get("value").unwrap_or(&Value::Null);
    let test = test(&operator, field.kind, value).map_err(|why| match why {
        Why::Operator => Invalid::field(
            format!("{path}.operator"),
            format!(
                "`{operator}` does not apply to {name}, a {} property; use one of {}.",
                field.kind.as_str(),
                operators(field.kind).join(", ")
            ),
        ),
        Why::Value(message) => Invalid::field(format!("{path}.value"), message),
    })?;
    Ok(Condition::Property { field, test })
}

fn field(name: &str, catalog: &Catalog<'_>) -> Option<Field> {
    if name == "isClerkUser" {
        return Some(Field {
            kind: PropertyType::Boolean,
            source: Source::IsClerkUser,
        });
    }
    if name == "notes" {
        return Some(Field {
            kind: PropertyType::String,
            source: Source::Custom(name.to_owned()),
        });
    }
    if let Some((_, kind, column)) = BUILT_IN.iter().find(|(known, _, _)| *known == name) {
        return Some(Field {
            kind: *kind,
            source: Source::Column(column),
        });
    }
    catalog
        .custom
        .iter()
        .find(|property| property.name == name)
        .map(|property| Field {
            kind: property.kind,
            source: Source::Custom(name.to_owned()),
        })
}

/// The operators that fit a type.
fn parse_activity(object: &Map<String, Value>, path: &str) -> Result<ActivityTest, Invalid> {
    only_keys(
        object,
        path,
        &[
            "activity",
            "template",
            "workflow",
            "campaignId",
            "withinDays",
            "negate",
        ],
    )?;
    let activity = match text(object, path, "activity")?.as_str() {
        "received" => Activity::Received,
        "opened" => Activity::Opened,
        "clicked" => Activity::Clicked,
        _ => {
            return Err(Invalid::field(
                format!("{path}.activity"),
                "`activity` must be \"received\", \"opened\" or \"clicked\".",
            ));
        }
    };
    let targets: Vec<&str> = ["template", "workflow", "campaignId"]
        .into_iter()
        .filter(|key| object.contains_key(*key))
        .collect();
    let target = match targets.as_slice() {
        ["template"] => Target::Template(text(object, path, "template")?),
        ["workflow"] => Target::Workflow(text(object, path, "workflow")?),
        ["campaignId"] => {
            let id = text(object, path, "campaignId")?;
            // Whether it exists is asked once for the whole filter (`check_filter`).
            match id.parse::<uuid::Uuid>() {
                Ok(campaign) => Target::Campaign(campaign),
                Err(_) => {
                    return Err(Invalid::field(
                        format!("{path}.campaignId"),
                        format!("There is no campaign with the ID {id:?}."),
                    ));
                }
            }
        }
        _ => {
            return Err(Invalid::field(
                path,
                "An activity names exactly one of `template`, `workflow` or `campaignId`.",
            ));
        }
    };
    let within_days = match object.get("withinDays") {
        None | Some(Value::Null) => None,
        Some(value) => Some(days(value).ok_or_else(|| {
            Invalid::field(
                format!("{path}.withinDays"),
                format!("`withinDays` must be a whole number from 1 to {MAX_DAYS}."),
            )
        })?),
    };
    Ok(ActivityTest {
        activity,
        target,
        within_days,
        negate: negate(object, path)?,
    })
}

fn object<'a>(value: &'a Value, path: &str, what: &str) -> Result<&'a Map<String, Value>, Invalid> {
    value
        .as_object()
        .ok_or_else(|| Invalid::field(path, format!("This must be {what}.")))
}

fn only_keys(object: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), Invalid> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => {
            // Named back, but never at any length.
            let key: String = key.chars().take(100).collect();
            Err(Invalid::field(
                format!("{path}.{key}"),
                format!(
                    "`{key}` does not belong here; this condition takes {}.",
                    allowed.join(", ")
                ),
            ))
        }
        None => Ok(()),
    }
}

fn text(object: &Map<String, Value>, path: &str, key: &str) -> Result<String, Invalid> {
    match object.get(key) {
        Some(Value::String(text))
            if !text.trim().is_empty()
                && text.chars().count() <= MAX_STRING_CHARS
                && !text.contains('\0') =>
        {
            Ok(text.trim().to_owned())
        }
        _ => Err(Invalid::field(
            format!("{path}.{key}"),
            format!("`{key}` must be a non-empty string of at most {MAX_STRING_CHARS} characters."),
        )),
    }
}

fn negate(object: &Map<String, Value>, path: &str) -> Result<bool, Invalid> {
    match object.get("negate") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(negate)) => Ok(*negate),
        Some(_) => Err(Invalid::field(
            format!("{path}.negate"),
            "`negate` must be true or false.",
        )),
    }
}

#[cfg(test)]
mod tests;
