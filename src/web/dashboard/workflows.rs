//! Each workflow: its definition, its runs by state, and per step how many runs
//! reached it, how many emails it sent, and how many runs ended there and why; a
//! drip's funnel at a glance.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use minijinja::context;
use minijinja::value::Serde;
use serde::Serialize;
use sqlx::PgPool;

use super::session::Session;
use super::{DashboardError, Views};
use crate::config::workflows::EntryRule;
use crate::workflows::Workflows;
use crate::workflows::definition::{Step, describe_duration};
use crate::workflows::state::{DeliveryState, RunState};
use crate::workflows::versions::{VersionInUse, versions_in_use};

#[derive(Serialize)]
struct StepView {
    number: usize,
    what: String,
    /// Runs that got to this step (are at it, or went past it).
    reached: i64,
    sent: i64,
    failed: i64,
    /// Of its emails, how many were delivered, opened, clicked, bounced, complained
    /// about (as relays and tracking reported).
    reported: BTreeMap<String, i64>,
    /// Why runs ended at this step, and how many.
    exits: Vec<(String, i64)>,
}

#[derive(Serialize)]
struct WorkflowView {
    name: String,
    trigger: String,
    entry: &'static str,
    transactional: bool,
    exit_when: Option<String>,
    runs: BTreeMap<&'static str, i64>,
    total: i64,
    steps: Vec<StepView>,
    /// The versions with active runs, and the file's.
    versions: Vec<VersionInUse>,
}

/// A workflow no longer in the file whose runs still finish on their version.
#[derive(Serialize)]
struct RemovedView {
    name: String,
    versions: Vec<VersionInUse>,
}

#[get("/workflows")]
pub async fn workflows_page(
    session: Session,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
    workflows: web::Data<Workflows>,
) -> Result<HttpResponse, DashboardError> {
    let (runs, emails, reported) = counts(&pool).await?;
    let mut versions = versions_in_use(&mut *pool.acquire().await?, &workflows).await?;
    let mut versions_of = |name: &str| {
        let (mine, rest) = std::mem::take(&mut versions)
            .into_iter()
            .partition::<Vec<_>, _>(|(workflow, _)| workflow == name);
        versions = rest;
        mine.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
    };
    let views_of: Vec<WorkflowView> = workflows
        .iter()
        .map(|workflow| {
            let mut by_state = BTreeMap::new();
            for run in runs.iter().filter(|r| r.workflow == workflow.name) {
                *by_state.entry(run.state.as_str()).or_insert(0) += run.count;
            }
            let steps = workflow
                .steps
                .iter()
                .enumerate()
                .map(|(index, step)| {
                    let mut view = step_view(&workflow.name, index, step, &runs, &emails);
                    let at = i32::try_from(index).unwrap_or(i32::MAX);
                    view.reported = reported
                        .iter()
                        .filter(|r| r.workflow == workflow.name && r.step == at)
                        .map(|r| (r.kind.clone(), r.count))
                        .collect();
                    view
                })
                .collect();
            WorkflowView {
                name: workflow.name.clone(),
                trigger: workflow.trigger.clone(),
                entry: match workflow.entry {
                    EntryRule::Once => "once per contact",
                    EntryRule::EveryTime => "every time",
                },
                transactional: workflow.transactional,
                exit_when: workflow.exit_when.clone(),
                total: by_state.values().sum(),
                runs: by_state,
                steps,
                versions: versions_of(&workflow.name),
            }
        })
        .collect();
    let mut removed: Vec<RemovedView> = Vec::new();
    for (name, version) in versions {
        match removed.iter_mut().find(|r| r.name == name) {
            Some(view) => view.versions.push(version),
            None => removed.push(RemovedView {
                name,
                versions: vec![version],
            }),
        }
    }
    views.render(
        "workflows.html",
        context! {
            page_title => "Workflows", section => "workflows", csrf => session.csrf(),
            workflows => minijinja::Value::from(Serde(&views_of)),
            removed => minijinja::Value::from(Serde(&removed)),
        },
    )
}

/// Runs counted by workflow, state, step and exit reason.
struct RunCount {
    workflow: String,
    state: RunState,
    current_step: i32,
    exit_reason: Option<String>,
    count: i64,
}

/// Emails counted by workflow, step and state.
struct EmailCount {
    workflow: String,
    step: i32,
    state: DeliveryState,
    count: i64,
}

/// Emails counted by workflow, step and what was reported of them.
struct ReportedCount {
    workflow: String,
    step: i32,
    kind: String,
    count: i64,
}

async fn counts(
    pool: &PgPool,
) -> sqlx::Result<(Vec<RunCount>, Vec<EmailCount>, Vec<ReportedCount>)> {
    let runs = sqlx::query_as!(
        RunCount,
        r#"select workflow, state as "state: RunState", current_step, exit_reason, count(*) as "count!"
           from workflow_runs group by 1, 2, 3, 4"#
    )
    .fetch_all(pool)
    .await?;
    let emails = sqlx::query_as!(
        EmailCount,
        r#"select r.workflow, d.step, d.state as "state: DeliveryState", count(*) as "count!"
           from email_deliveries d join workflow_runs r on r.id = d.run_id
           group by 1, 2, 3"#
    )
    .fetch_all(pool)
    .await?;
    // From the reports (far fewer than the emails), each email once per kind.
    let reported = sqlx::query_as!(
        ReportedCount,
        r#"select r.workflow, d.step, x.kind as "kind!", count(distinct d.id) as "count!"
           from (select delivery_id,
                        case when kind in ('hard_bounce', 'soft_bounce') then 'bounced'
                             when kind = 'complaint' then 'complained' else kind end as kind
                 from email_events where delivery_id is not null and kind <> 'other'
                 union all
                 select delivery_id, case when kind = 'open' then 'opened' else 'clicked' end
                 from email_engagements where kind = 'click' or not machine) as x
           join email_deliveries d on d.id = x.delivery_id
           join workflow_runs r on r.id = d.run_id
           group by 1, 2, 3"#
    )
    .fetch_all(pool)
    .await?;
    Ok((runs, emails, reported))
}

/// Step `index` of `workflow` with how many runs reached it, its emails and its exits.
fn step_view(
    workflow: &str,
    index: usize,
    step: &Step,
    runs: &[RunCount],
    emails: &[EmailCount],
) -> StepView {
    let at = i32::try_from(index).unwrap_or(i32::MAX);
    let mine = || runs.iter().filter(|r| r.workflow == workflow);
    let reached = mine()
        .filter(|r| r.current_step >= at)
        .map(|r| r.count)
        .sum();
    let exits = mine()
        .filter(|r| r.state == RunState::Exited && r.current_step == at)
        .map(|r| (r.exit_reason.clone().unwrap_or_default(), r.count))
        .collect();
    let emails_where = |counted: fn(DeliveryState) -> bool| {
        emails
            .iter()
            .filter(|e| e.workflow == workflow && e.step == at && counted(e.state))
            .map(|e| e.count)
            .sum()
    };
    StepView {
        number: index + 1,
        what: match step {
            Step::Send { template } => format!("send {template}"),
            Step::Wait { duration } => format!("wait {}", describe_duration(*duration)),
            Step::If { condition } => format!("if {condition}"),
        },
        reached,
        sent: emails_where(|state| state == DeliveryState::Sent),
        failed: emails_where(DeliveryState::is_failure),
        reported: BTreeMap::new(),
        exits,
    }
}
