//! The workflow engine: the job handler that runs step jobs, a claim batch at a time.
//! The batch's runs and contacts are read in two queries. Every step first checks the
//! run is still active and its exit condition; a wait or a false condition moves or
//! ends the run; the batch's sends go through `delivery` together.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use super::context::{condition_holds, step_context};
use minijinja::Value;
use serde::Deserialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::definition::{CAMPAIGN, Step, Workflow};
use super::outbound::Outbound;
use super::runs::{Run, advance_run, exit_run, find_runs};
use super::state::RunState;
use super::versions::definition_for;
use super::{STEP_JOB, TRANSACTIONAL, Workflows, delivery};
use crate::config::Settings;
use crate::contacts::Contact;
use crate::contacts::store::find_contacts_by_id;
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
                &settings.smtp_ca,
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
        let mut outcome = self.run_steps(std::slice::from_ref(job)).await;
        outcome.pop().unwrap_or(Ok(()))
    }

    async fn run_batch(&self, jobs: &[Job]) -> Vec<anyhow::Result<()>> {
        self.run_steps(jobs).await
    }
}

/// What a step job asks: step `step` of run `run`.
fn step_job(job: &Job) -> anyhow::Result<StepJob> {
    anyhow::ensure!(
        job.kind == STEP_JOB,
        "no handler for jobs of kind {:?}",
        job.kind
    );
    Ok(serde_json::from_value(job.payload.clone())?)
}

impl Engine {
    /// Runs the step jobs `jobs`: one result per job, in their order.
    pub async fn run_steps(&self, jobs: &[Job]) -> Vec<anyhow::Result<()>> {
        let asked: Vec<anyhow::Result<StepJob>> = jobs.iter().map(step_job).collect();
        let run_ids: Vec<Uuid> = asked.iter().flatten().map(|s| s.run).collect();
        let (runs, contacts) = match self.read_batch(&run_ids).await {
            Ok(read) => read,
            Err(error) => {
                return jobs
                    .iter()
                    .map(|_| Err(anyhow::anyhow!("cannot read the steps' runs: {error}")))
                    .collect();
            }
        };
        // Each step up to its send, all at once; then the sends together.
        let stepped = join_all(jobs.iter().zip(asked).map(|(job, asked)| {
            let run = asked.as_ref().ok().and_then(|a| runs.get(&a.run)).cloned();
            let contact = run
                .as_ref()
                .and_then(|run| run.contact_id)
                .and_then(|id| contacts.get(&id))
                .cloned();
            async move {
                let StepJob { step, .. } = asked?;
                let attempt = Attempt {
                    due: job.run_at,
                    last: job.attempts >= job.max_attempts,
                    bulk: job.bulk,
                };
                match run {
                    Some(run) => self.run_step(run, step, contact, attempt).await,
                    None => Ok(None), // gone with its contact's erasure
                }
            }
        }))
        .await;
        let mut results = Vec::with_capacity(jobs.len());
        let mut sends = Vec::new();
        for (index, outcome) in stepped.into_iter().enumerate() {
            match outcome {
                Ok(Some(send)) => {
                    sends.push((index, send));
                    results.push(Ok(()));
                }
                Ok(None) => results.push(Ok(())),
                Err(error) => results.push(Err(error)),
            }
        }
        let (indices, sends): (Vec<usize>, Vec<_>) = sends.into_iter().unzip();
        let webhooks = self.workflows.webhooks();
        let sent = delivery::send_all(&self.pool, &self.outbound, webhooks, sends).await;
        for (index, outcome) in indices.into_iter().zip(sent) {
            results[index] = outcome;
        }
        results
    }

    /// The runs of a batch and their contacts, by ID.
    async fn read_batch(
        &self,
        run_ids: &[Uuid],
    ) -> sqlx::Result<(HashMap<Uuid, Run>, HashMap<Uuid, Contact>)> {
        let mut conn = self.pool.acquire().await?;
        let runs = find_runs(&mut conn, run_ids).await?;
        let contact_ids: Vec<Uuid> = runs.iter().filter_map(|run| run.contact_id).collect();
        let contacts = find_contacts_by_id(&mut conn, &contact_ids).await?;
        Ok((
            runs.into_iter().map(|run| (run.id, run)).collect(),
            contacts.into_iter().map(|c| (c.id, c)).collect(),
        ))
    }

    /// Runs step `step` of `run` (with its contact now, if it still has one) up to its
    /// send: a send step is returned for `delivery` to send with the batch's.
    #[tracing::instrument(name = "step", skip_all, fields(run = %run.id, step))]
    async fn run_step(
        &self,
        run: Run,
        step: i32,
        contact: Option<Contact>,
        attempt: Attempt,
    ) -> anyhow::Result<Option<delivery::SendStep>> {
        let due = attempt.due;
        if run.state != RunState::Active || run.current_step != step {
            return Ok(None); // ended, or this step ran already
        }
        let mut conn = self.pool.acquire().await?;
        let Some(workflow) = self.workflow_of(&mut conn, &run, step).await? else {
            return Ok(None);
        };
        let contact_json = contact
            .as_ref()
            .map_or_else(|| run.contact.clone(), |c| c.step_json());
        let context = step_context(contact_json, run.event.clone(), &workflow.name);
        if exit_condition_ends(&mut conn, &run, step, &workflow, &context).await? {
            return Ok(None);
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
                let template = template.clone();
                return Ok(Some(delivery::SendStep {
                    run,
                    workflow,
                    step,
                    template,
                    contact,
                    context,
                    due,
                    last_attempt: attempt.last,
                    bulk: attempt.bulk,
                }));
            }
        }
        Ok(None)
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
