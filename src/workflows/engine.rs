//! The workflow engine: the job handler that runs one step of one run. Every step
//! first checks the run is still active and its exit condition; a wait or a false
//! condition moves or ends the run; a send goes through `delivery`.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Deserialize;
use sqlx::PgPool;
use url::Url;
use uuid::Uuid;

use super::definition::{Step, Workflow};
use super::runs::{advance_run, exit_run, find_run};
use super::versions::definition_for;
use super::{STEP_JOB, TRANSACTIONAL, Workflows, delivery};
use crate::config::Settings;
use crate::contacts::store::find_contact_by_id;
use crate::email::templates::Templates;
use crate::email::transport::Mailer;
use crate::email::unsubscribe::UnsubscribeKey;
use crate::jobs::Job;
use crate::jobs::worker::JobHandler;

/// Everything a step needs; built once by `roster serve` (and by tests).
#[derive(Clone)]
pub struct Engine {
    pub pool: PgPool,
    pub workflows: Arc<Workflows>,
    pub templates: Arc<Templates>,
    pub mailer: Mailer,
    /// `MAIL_FROM`; checked at start to be set when a workflow sends.
    pub from: Option<Mailbox>,
    pub public_url: Url,
    /// Signs the unsubscribe links of marketing email.
    pub unsubscribe: Option<UnsubscribeKey>,
}

/// SMTP connections the engine keeps open at most.
const SMTP_CONNECTIONS: u32 = 16;

impl Engine {
    /// The engine `roster serve` runs, from the settings; email goes to `outbox` when
    /// `SMTP_URL` is unset.
    pub fn new(
        settings: &Settings,
        pool: PgPool,
        workflows: Arc<Workflows>,
        templates: Arc<Templates>,
        outbox: &Path,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            workflows,
            templates,
            mailer: Mailer::new(settings.smtp_url.as_ref(), outbox, SMTP_CONNECTIONS)?,
            from: settings.mail_from.clone(),
            public_url: settings.public_url.clone(),
            unsubscribe: settings.unsubscribe_secret.clone().map(UnsubscribeKey::new),
        })
    }
}

#[derive(Deserialize)]
struct StepJob {
    run: Uuid,
    step: i32,
}

impl JobHandler for Engine {
    async fn run(&self, job: &Job) -> anyhow::Result<()> {
        anyhow::ensure!(
            job.kind == STEP_JOB,
            "no handler for jobs of kind {:?}",
            job.kind
        );
        let StepJob { run, step } = serde_json::from_value(job.payload.clone())?;
        let last_attempt = job.attempts >= job.max_attempts;
        self.run_step(run, step, job.run_at, last_attempt).await
    }
}

impl Engine {
    /// Runs step `step` of run `run_id`. `due` is when the step was due: later steps
    /// are timed from it, so a drip keeps its rhythm and tests can move the clock.
    async fn run_step(
        &self,
        run_id: Uuid,
        step: i32,
        due: DateTime<Utc>,
        last_attempt: bool,
    ) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        let Some(run) = find_run(&mut conn, run_id).await? else {
            return Ok(());
        };
        if run.state != "active" || run.current_step != step {
            return Ok(()); // ended, or this step ran already
        }
        let workflow = if run.workflow == TRANSACTIONAL {
            let template = run.event["transactionalId"].as_str().unwrap_or_default();
            Workflow::transactional(template)
        } else {
            match definition_for(
                &mut conn,
                &self.workflows,
                &run.workflow,
                run.version.as_deref(),
            )
            .await?
            {
                Some(workflow) => workflow,
                None => {
                    let reason = "the workflow is no longer in the config file";
                    exit_run(&mut conn, run.id, step, reason).await?;
                    return Ok(());
                }
            }
        };
        let workflow = &workflow;
        let contact = match run.contact_id {
            Some(id) => find_contact_by_id(&mut conn, id).await?,
            None => None,
        };
        let contact_json = contact
            .as_ref()
            .map_or_else(|| run.contact.clone(), |c| c.to_json());
        let context = step_context(contact_json, run.event.clone(), &workflow.name);
        if let Some(exit_when) = &workflow.exit_when {
            match holds(exit_when, &context) {
                Ok(false) => {}
                Ok(true) => {
                    let reason = format!("exit condition met: {exit_when}");
                    exit_run(&mut conn, run.id, step, &reason).await?;
                    return Ok(());
                }
                Err(error) => {
                    let reason = format!("exit_when {exit_when:?} failed: {error}");
                    exit_run(&mut conn, run.id, step, &reason).await?;
                    return Ok(());
                }
            }
        }
        let steps = workflow.steps.len();
        match usize::try_from(step)
            .ok()
            .and_then(|i| workflow.steps.get(i))
        {
            None => advance_run(&mut conn, run.id, step, steps, due).await?,
            Some(Step::Wait { duration }) => {
                advance_run(&mut conn, run.id, step, steps, due + *duration).await?
            }
            Some(Step::If { condition }) => match holds(condition, &context) {
                Ok(true) => advance_run(&mut conn, run.id, step, steps, due).await?,
                Ok(false) => {
                    exit_run(
                        &mut conn,
                        run.id,
                        step,
                        &format!("condition not met: {condition}"),
                    )
                    .await?
                }
                Err(error) => {
                    let reason = format!("condition {condition:?} failed: {error}");
                    exit_run(&mut conn, run.id, step, &reason).await?
                }
            },
            Some(Step::Send { template }) => {
                drop(conn);
                let send = delivery::SendStep {
                    run: &run,
                    workflow,
                    step,
                    template,
                    contact: contact.as_ref(),
                    context,
                    due,
                    last_attempt,
                };
                delivery::send(self, send).await?
            }
        }
        Ok(())
    }
}

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
pub fn holds(expression: &str, context: &Value) -> anyhow::Result<bool> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let value = env.compile_expression(expression)?.eval(context)?;
    anyhow::ensure!(
        !value.is_undefined(),
        "it names something that does not exist"
    );
    Ok(value.is_true())
}
