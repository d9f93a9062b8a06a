//! Transactional sends: one template to one address with data variables, checked to
//! render before it is queued (so a missing variable is refused at once, not a failed
//! send later), then sent by the engine as a one-step run that ignores `subscribed`
//! but not suppression.

use chrono::Utc;
use minijinja::context;
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::TRANSACTIONAL;
use super::context::step_context;
use super::runs::{start_transactional_run, transactional_event};
use crate::contacts::Contact;
use crate::email::templates::Templates;
use crate::input::{InputError, Invalid};

/// Checks that `template` renders for the recipient (`contact`, or just `email`) with
/// `data` as `event.data`, then starts the one-step run that sends it, in the caller's
/// transaction.
pub async fn queue_transactional(
    tx: &mut PgConnection,
    templates: &Templates,
    template: &str,
    contact: Option<&Contact>,
    email: &str,
    data: &Value,
) -> Result<(), InputError> {
    let event = transactional_event(template, data);
    queue_transactional_event(tx, templates, contact, email, &event).await
}

/// `queue_transactional` with the `event` templates see, which names the template as
/// `transactionalId` and holds the data variables under `data`.
pub async fn queue_transactional_event(
    tx: &mut PgConnection,
    templates: &Templates,
    contact: Option<&Contact>,
    email: &str,
    event: &Value,
) -> Result<(), InputError> {
    let template = event["transactionalId"].as_str().unwrap_or_default();
    let copy = contact.map_or_else(|| json!({ "email": email }), Contact::to_json);
    check_renders(templates, template, &copy, event)?;
    start_transactional_run(tx, contact.map(|c| c.id), &copy, event, Utc::now()).await?;
    Ok(())
}

/// Renders the email as the send will, naming the data variables that are missing:
/// those the template uses, was not given, and cannot render without.
pub fn check_renders(
    templates: &Templates,
    template: &str,
    contact: &Value,
    event: &Value,
) -> Result<(), Invalid> {
    let renders = |event: &Value| {
        let step = step_context(contact.clone(), event.clone(), TRANSACTIONAL);
        let context = context! { unsubscribe_url => Option::<String>::None, ..step };
        templates.render(template, &context)
    };
    let Err(error) = renders(event) else {
        return Ok(());
    };
    let given = event["data"].as_object().cloned().unwrap_or_default();
    let absent: Vec<String> = templates
        .data_variables(template)
        .into_iter()
        .filter(|name| !given.contains_key(name))
        .collect();
    let with = |names: &mut dyn Iterator<Item = &String>| {
        let mut data = given.clone();
        data.extend(names.map(|name| (name.clone(), Value::from("x"))));
        let mut event = event.clone();
        event["data"] = Value::Object(data);
        event
    };
    let missing: Vec<&str> = absent
        .iter()
        .filter(|name| renders(&with(&mut absent.iter().filter(|other| other != name))).is_err())
        .map(String::as_str)
        .collect();
    let message = if missing.is_empty() || renders(&with(&mut absent.iter())).is_err() {
        format!("The email cannot be rendered with these data variables: {error}")
    } else {
        format!("Missing required data variable(s): {}", missing.join(", "))
    };
    Err(Invalid::field("dataVariables", message))
}
