//! The workflow engine: the job handler that runs one step of one run. Every step
//! first checks the run is still active and its exit condition; a wait or a false
//! condition moves or ends the run; a send goes through `delivery`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use sqlx::PgPool;
use url::Url;
use uuid::Uuid;

use super::definition::Step;
use super::runs::{advance_run, exit_run, find_run};
use super::{STEP_JOB, Workflows, delivery};
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
        self.run_step(run, step, job.run_at).await
    }
}

impl Engine {
    /// Runs step `step` of run `run_id`. `due` is when the step was due: later steps
    /// are timed from it, so a drip keeps its rhythm and tests can move the clock.
    async fn run_step(&self, run_id: Uuid, step: i32, due: DateTime<Utc>) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        let Some(run) = find_run(&mut conn, run_id).await? else {
            return Ok(());
        };
        if run.state != "active" || run.current_step != step {
            return Ok(()); // ended, or this step ran already
        }
        let Some(workflow) = self.workflows.get(&run.workflow) else {
            exit_run(
                &mut conn,
                run.id,
                "the workflow is no longer in the config file",
            )
            .await?;
            return Ok(());
        };
        let contact = match run.contact_id {
            Some(id) => find_contact_by_id(&mut conn, id).await?,
            None => None,
        };
        let contact_json = contact
            .as_ref()
            .map_or_else(|| run.contact.clone(), |c| c.to_json());
        let context = context! {
            contact => Value::from(Serde(contact_json)),
            event => Value::from(Serde(run.event.clone())),
            workflow => context! { name => workflow.name.clone() },
        };
        if let Some(exit_when) = &workflow.exit_when
            && holds(exit_when, &context)?
        {
            exit_run(
                &mut conn,
                run.id,
                &format!("exit condition met: {exit_when}"),
            )
            .await?;
            return Ok(());
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
            Some(Step::If { condition }) => {
                if holds(condition, &context)? {
                    advance_run(&mut conn, run.id, step, steps, due).await?
                } else {
                    exit_run(
                        &mut conn,
                        run.id,
                        &format!("condition not met: {condition}"),
                    )
                    .await?
                }
            }
            Some(Step::Send { template }) => {
                let send = delivery::SendStep {
                    run: &run,
                    workflow,
                    step,
                    template,
                    contact: contact.as_ref(),
                    context,
                    due,
                };
                delivery::send(self, &mut conn, send).await?
            }
        }
        Ok(())
    }
}

/// Evaluates a condition (checked to compile at start) against the step's context.
fn holds(expression: &str, context: &Value) -> anyhow::Result<bool> {
    let env = Environment::new();
    let value = env.compile_expression(expression)?.eval(context)?;
    Ok(value.is_true())
}
