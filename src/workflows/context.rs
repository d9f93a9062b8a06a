//! What a step's templates and conditions see (`contact`, `event`, `workflow`), the
//! samples `roster check` and the dashboard's preview render with, and the condition
//! evaluator.

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value, context};

use super::TRANSACTIONAL;
use crate::email::templates::Templates;

/// What templates and conditions see: `contact`, `event` (the Clerk event: `type`,
/// `data`) and `workflow` (`name`).
pub fn step_context(contact: serde_json::Value, event: serde_json::Value, workflow: &str) -> Value {
    context! {
        contact => Value::from(Serde(contact)),
        event => Value::from(Serde(event)),
        workflow => context! { name => workflow },
    }
}

/// What `roster check` renders templates and evaluates conditions with: a contact
/// with every field set and an event as a real step would see it: a Clerk
/// `user.created`'s fields, and, since the event that starts a run (a Clerk event of
/// any type, an API event) carries data `roster check` cannot know, any other key of
/// `event.data` taken as "sample", as it would be there at run time. A misspelt
/// contact field is still an error.
pub fn sample_context(workflow: &str) -> Value {
    let contact = serde_json::json!({
        "id": "0190b8a4-5b1e-7c3d-9f00-000000000000",
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "source": "Clerk",
        "subscribed": true,
        "userGroup": "Users",
        "userId": "user_2q8XfA1bC3dE4fG5hI6jK7lM8nO",
        "mailingLists": {},
        "optInStatus": null,
        "clerk": {
            "banned": false,
            "locked": false,
            "lastSignInAt": "2026-01-01T00:00:00.401Z",
            "organizations": [{ "id": "org_2q8XfA1bC3dE4fG5hI6jK7lM8nO", "name": "Analytical Engines", "slug": "analytical-engines", "role": "org:admin" }],
            "subscriptionStatus": "active",
            "plan": "pro",
            "trialEndsAt": "2026-01-15T00:00:00Z",
        },
    });
    let data = serde_json::json!({
        "id": "user_2q8XfA1bC3dE4fG5hI6jK7lM8nO",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "primary_email_address_id": "idn_2q8XfB9zY8xW7vU6tS5rQ4pO3nM",
        "email_addresses": [{ "id": "idn_2q8XfB9zY8xW7vU6tS5rQ4pO3nM", "email_address": "ada@example.com" }],
        "public_metadata": {},
        "unsafe_metadata": {},
        "created_at": 1767225600401i64,
        "updated_at": 1767225600498i64,
    });
    let event = serde_json::json!({ "object": "event", "type": "user.created", "timestamp": 1767225600512i64 });
    let step = step_context(contact, event, workflow);
    context! {
        event => context! { data => Value::from_object(SampleData(data)), ..step.get_attr("event").unwrap_or_default() },
        unsubscribe_url => "https://roster.example.test/unsubscribe/sample",
        ..step
    }
}

/// `event.data` for `roster check`: the sample's keys as they are, any other key a
/// value that renders "sample" and has any key in turn.
#[derive(Debug)]
struct SampleData(serde_json::Value);

impl minijinja::value::Object for SampleData {
    fn get_value(self: &std::sync::Arc<Self>, key: &Value) -> Option<Value> {
        let known = key.as_str().and_then(|key| self.0.get(key));
        Some(match known {
            Some(value) => Value::from(Serde(value.clone())),
            None => Value::from_object(SampleData(serde_json::Value::Null)),
        })
    }

    fn render(self: &std::sync::Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            serde_json::Value::Null => f.write_str("sample"),
            other => write!(f, "{other}"),
        }
    }
}

/// Every data variable `template` uses, set to "sample".
pub fn sample_data_variables(templates: &Templates, template: &str) -> serde_json::Value {
    templates
        .data_variables(template)
        .into_iter()
        .map(|name| (name, serde_json::Value::from("sample")))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// What `roster check` renders a transactional template with: the sample contact and
/// every data variable the template uses, set to a sample string.
pub fn sample_transactional_context(templates: &Templates, template: &str) -> Value {
    let event =
        super::runs::transactional_event(template, &sample_data_variables(templates, template));
    let sample = sample_context(TRANSACTIONAL);
    context! { event => Value::from(Serde(event)), ..sample }
}

/// Evaluates a condition against a step's context. A name that does not exist is an
/// error, not "false", so a misspelt condition is caught (by `roster check` against a
/// sample, and at run time with the reason recorded).
pub fn condition_holds(expression: &str, context: &Value) -> anyhow::Result<bool> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let value = env.compile_expression(expression)?.eval(context)?;
    anyhow::ensure!(
        !value.is_undefined(),
        "it names something that does not exist"
    );
    Ok(value.is_true())
}
