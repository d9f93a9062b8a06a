//! The contact fields of a request body, as Loops takes them: the built-in fields, a
//! `mailingLists` object, and custom properties at top level. Each value is checked
//! against its type; `null` clears a field. Keys that are neither, Loops ignores on
//! its contact routes, and so does Roster.

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::{Contact, ContactError, MAX_EMAIL_CHARS};
use crate::config::ConfigFile;
use sqlx::PgConnection;

use super::properties::{
    CustomProperty, MAX_STRING_CHARS, PropertyType, coerce_value, list_custom_properties,
};

/// What a request asks to change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ContactInput {
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub source: Option<String>,
    pub subscribed: Option<bool>,
    pub user_group: Option<Option<String>>,
    pub mailing_lists: Vec<(String, bool)>,
    /// Custom values, normalised; `Value::Null` removes one.
    pub properties: Map<String, Value>,
}

impl ContactInput {
    /// Reads the contact fields of `body`, skipping `other_fields` (the request's own,
    /// such as `eventName`).
    pub fn parse(
        body: &Map<String, Value>,
        custom: &[CustomProperty],
        config: &ConfigFile,
        other_fields: &[&str],
    ) -> Result<Self, ContactError> {
        let mut input = Self::default();
        for (key, value) in body {
            match key.as_str() {
                "email" => {
                    input.email = optional_string(key, value)?
                        .map(normalise_email)
                        .transpose()?
                }
                "userId" => {
                    input.user_id = optional_string(key, value)?.filter(|id| !id.is_empty())
                }
                "firstName" => input.first_name = Some(optional_string(key, value)?),
                "lastName" => input.last_name = Some(optional_string(key, value)?),
                "userGroup" => input.user_group = Some(optional_string(key, value)?),
                "source" => input.source = optional_string(key, value)?,
                "subscribed" => match value {
                    Value::Bool(subscribed) => input.subscribed = Some(*subscribed),
                    Value::Null => {}
                    _ => {
                        return Err(ContactError::field(
                            key,
                            "`subscribed` must be true or false.",
                        ));
                    }
                },
                "notes" => {
                    let notes = coerce_value(PropertyType::String, value)
                        .map_err(|why| ContactError::field(key, format!("`notes` {why}.")))?;
                    input.properties.insert(key.clone(), notes);
                }
                "mailingLists" => input.mailing_lists = mailing_lists(value, config)?,
                key if other_fields.contains(&key) => {}
                key => {
                    if let Some(property) = custom.iter().find(|p| p.name == key) {
                        let value = coerce_value(property.kind, value)
                            .map_err(|why| ContactError::field(key, format!("`{key}` {why}.")))?;
                        input.properties.insert(key.to_owned(), value);
                    }
                }
            }
        }
        Ok(input)
    }

    /// `parse`, checking custom values against the properties as `conn` sees them.
    pub async fn read(
        conn: &mut PgConnection,
        body: &Map<String, Value>,
        config: &ConfigFile,
        other_fields: &[&str],
    ) -> Result<Self, ContactError> {
        let custom = list_custom_properties(conn).await?;
        Self::parse(body, &custom, config, other_fields)
    }

    /// Applies the changes to `contact`; returns whether it became unsubscribed.
    pub fn apply(&self, contact: &mut Contact) -> bool {
        if let Some(email) = &self.email {
            contact.email.clone_from(email);
        }
        if let Some(user_id) = &self.user_id {
            contact.user_id = Some(user_id.clone());
        }
        if let Some(first_name) = &self.first_name {
            contact.first_name.clone_from(first_name);
        }
        if let Some(last_name) = &self.last_name {
            contact.last_name.clone_from(last_name);
        }
        if let Some(user_group) = &self.user_group {
            contact.user_group.clone_from(user_group);
        }
        if let Some(source) = &self.source {
            contact.source.clone_from(source);
        }
        let mut unsubscribed = false;
        match self.subscribed {
            Some(true) if !contact.subscribed => {
                contact.subscribed = true;
                contact.unsubscribed_at = None;
            }
            Some(false) if contact.subscribed => {
                contact.subscribed = false;
                contact.unsubscribed_at = Some(Utc::now());
                unsubscribed = true;
            }
            _ => {}
        }
        if !self.mailing_lists.is_empty() {
            let mut lists = contact
                .mailing_lists
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (id, on) in &self.mailing_lists {
                if *on {
                    lists.insert(id.clone(), json!(true));
                } else {
                    lists.remove(id);
                }
            }
            contact.mailing_lists = Value::Object(lists);
        }
        if !self.properties.is_empty() {
            let mut properties = contact.properties.as_object().cloned().unwrap_or_default();
            for (name, value) in &self.properties {
                if value.is_null() {
                    properties.remove(name);
                } else {
                    properties.insert(name.clone(), value.clone());
                }
            }
            contact.properties = Value::Object(properties);
        }
        unsubscribed
    }
}

fn optional_string(key: &str, value: &Value) -> Result<Option<String>, ContactError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.chars().count() > MAX_STRING_CHARS => Err(ContactError::field(
            key,
            format!("`{key}` must be at most {MAX_STRING_CHARS} characters long."),
        )),
        Value::String(text) => Ok(Some(text.trim().to_owned())),
        _ => Err(ContactError::field(
            key,
            format!("`{key}` must be a string."),
        )),
    }
}

/// An address as stored: trimmed, checked to be one address of at most 254 characters.
pub fn normalise_email(email: String) -> Result<String, ContactError> {
    let email = email.trim().to_owned();
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(ContactError::field(
            "email",
            format!("`email` must be at most {MAX_EMAIL_CHARS} characters long."),
        ));
    }
    match email.parse::<lettre::Address>() {
        Ok(_) => Ok(email),
        Err(_) => Err(ContactError::field("email", "Invalid email address.")),
    }
}

fn mailing_lists(value: &Value, config: &ConfigFile) -> Result<Vec<(String, bool)>, ContactError> {
    let object = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(object) => object,
        _ => {
            return Err(ContactError::field(
                "mailingLists",
                "`mailingLists` must be an object of list IDs and true or false.",
            ));
        }
    };
    object
        .iter()
        .map(|(id, on)| {
            let path = format!("mailingLists.{id}");
            if config.list(id).is_none() {
                return Err(ContactError::field(
                    path,
                    format!("There is no mailing list with the ID {id:?}."),
                ));
            }
            match on {
                Value::Bool(on) => Ok((id.clone(), *on)),
                _ => Err(ContactError::field(
                    path,
                    format!("`mailingLists.{id}` must be true or false."),
                )),
            }
        })
        .collect()
}
