//! The workflow engine: the job handler that runs one step of one run. Every step
//! first checks the run is still active and its exit condition; a wait or a false
//! condition moves or ends the run; a send goes through `delivery`.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::context::{condition_holds, step_context};
use minijinja::Value;
use serde::Deserialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::definition::{CAMPAIGN, Step, Workflow};
use super::outbound::Outbound;
use super::runs::{Run, advance_run, exit_run, find_run};
use super::state::RunState;
use super::versions::definition_for;
use super::{STEP_JOB, TRANSACTIONAL, Workflows, delivery};
use crate::config::Settings;
use crate::contacts::store::find_contact_by_id;
use crate::email::budget::SendBudget;
use crate::email::templates::Templates;
use crate::email::transport::Mailer;
use crate::email::unsubscribe::UnsubscribeKey;
use crate::jobs::Job;
use crate::jobs::worker::JobHandler;

/// Everything a step needs; built once by `startup::Application`.
#[derive(Clone)]
pub struct Engine {
    pub pool: PgPool,
    pub workflows: Arc<Workflows>,
    pub outbound: Outbound,
}

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
        let outbound = Outbound {
            mailer: Mailer::new(
                settings.smtp_url.as_ref(),
                outbox,
                settings.smtp_connections,
            )?,
            budget: settings.file.sending.rate.map(SendBudget::new),
            templates,
            from: settings.mail_from.clone(),
            public_url: settings.public_url.clone(),
            unsubscribe: settings.unsubscribe_secret.clone().map(UnsubscribeKey::new),
        };
        Ok(Self {
            pool,
            workflows,
            outbound,
        })
    }
}

/// What the step's job says of this attempt.
struct Attempt {
    /// When the step was due: later steps are timed from it, so a drip keeps its rhythm
    /// and tests can move the clock.
    due: DateTime<Utc>,
    /// The job's last attempt: a transient send failure now ends the run.
    last: bool,
    /// A campaign's send, behind all other email in the send budget.
    bulk: bool,
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
        let attempt = Attempt {
            due: job.run_at,
            last: job.attempts >= job.max_attempts,
            bulk: job.bulk,
        };
        self.run_step(run, step, attempt).await
    }
}

impl Engine {
    /// Runs step `step` of run `run_id`.
    #[tracing::instrument(name = "step", skip(self, attempt))]
    async fn run_step(&self, run_id: Uuid, step: i32, attempt: Attempt) -> anyhow::Result<()> {
        let due = attempt.due;
        let mut conn = self.pool.acquire().await?;
        let Some(run) = find_run(&mut conn, run_id).await? else {
            return Ok(());
        };
        if run.state != RunState::Active || run.current_step != step {
            return Ok(()); // ended, or this step ran already
        }
        let Some(workflow) = self.workflow_of(&mut conn, &run, step).await? else {
            return Ok(());
        };
        let workflow = &workflow;
        let contact = match run.contact_id {
            Some(id) => find_contact_by_id(&mut conn, id).await?,
            None => None,
        };
        let contact_json = contact
            .as_ref()
            .map_or_else(|| run.contact.clone(), |c| c.step_json());
        let context = step_context(contact_json, run.event.clone(), &workflow.name);
        if exit_condition_ends(&mut conn, &run, step, workflow, &context).await? {
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
            Some(Step::If { condition }) => match condition_holds(condition, &context) {
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
                    last_attempt: attempt.last,
                    bulk: attempt.bulk,
                    webhooks: self.workflows.webhooks(),
                };
                delivery::send(&self.pool, &self.outbound, send).await?
            }
        }
        Ok(())
    }

    /// The definition run `run` follows: its version (or the transactional send's one
    /// step); `None` when it is gone, and then the run has exited with the reason.
    async fn workflow_of(
        &self,
        conn: &mut PgConnection,
        run: &Run,
        step: i32,
    ) -> sqlx::Result<Option<Workflow>> {
        if run.workflow == TRANSACTIONAL {
            let template = run.event["transactionalId"].as_str().unwrap_or_default();
            return Ok(Some(Workflow::transactional(template)));
        }
        if run.workflow == CAMPAIGN {
            let template = run.event["template"].as_str().unwrap_or_default();
            return Ok(Some(Workflow::campaign(template)));
        }
        let definition =
            definition_for(conn, &self.workflows, &run.workflow, run.version.as_deref()).await?;
        if definition.is_none() {
            let reason = "the workflow is no longer in the config file";
            exit_run(conn, run.id, step, reason).await?;
        }
        Ok(definition)
    }
}

/// Ends the run when the workflow's `exit_when` holds (or fails to evaluate, with the
/// reason); `true` when it did.
async fn exit_condition_ends(
    conn: &mut PgConnection,
    run: &Run,
    step: i32,
    workflow: &Workflow,
    context: &Value,
) -> sqlx::Result<bool> {
    let Some(exit_when) = &workflow.exit_when else {
        return Ok(false);
    };
    let reason = match condition_holds(exit_when, context) {
        Ok(false) => return Ok(false),
        Ok(true) => format!("exit condition met: {exit_when}"),
        Err(error) => format!("exit_when {exit_when:?} failed: {error}"),
    };
    exit_run(conn, run.id, step, &reason).await?;
    Ok(true)
}
