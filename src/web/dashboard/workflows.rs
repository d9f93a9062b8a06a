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
use crate::workflows::Workflows;
use crate::workflows::definition::{EntryRule, Step, describe_duration};
use crate::workflows::versions::{VersionInUse, versions_in_use};

#[derive(Serialize)]
struct StepView {
    number: usize,
    what: String,
    /// Runs that got to this step (are at it, or went past it).
    reached: i64,
    sent: i64,
    failed: i64,
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
    runs: BTreeMap<String, i64>,
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
    let runs = sqlx::query!(
        r#"select workflow, state, current_step, exit_reason, count(*) as "count!"
           from workflow_runs group by 1, 2, 3, 4"#
    )
    .fetch_all(pool.get_ref())
    .await?;
    let emails = sqlx::query!(
        r#"select r.workflow, d.step, d.state, count(*) as "count!"
           from email_deliveries d join workflow_runs r on r.id = d.run_id
           group by 1, 2, 3"#
    )
    .fetch_all(pool.get_ref())
    .await?;
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
            let mine = runs.iter().filter(|r| r.workflow == workflow.name);
            let mut by_state = BTreeMap::new();
            for run in mine.clone() {
                *by_state.entry(run.state.clone()).or_insert(0) += run.count;
            }
            let steps = workflow
                .steps
                .iter()
                .enumerate()
                .map(|(index, step)| {
                    let index_i32 = i32::try_from(index).unwrap_or(i32::MAX);
                    let reached = mine
                        .clone()
                        .filter(|r| r.current_step >= index_i32)
                        .map(|r| r.count)
                        .sum();
                    let exits = mine
                        .clone()
                        .filter(|r| r.state == "exited" && r.current_step == index_i32)
                        .map(|r| (r.exit_reason.clone().unwrap_or_default(), r.count))
                        .collect();
                    let sent_as = |states: &[&str]| {
                        emails
                            .iter()
                            .filter(|e| e.workflow == workflow.name && e.step == index_i32)
                            .filter(|e| states.contains(&e.state.as_str()))
                            .map(|e| e.count)
                            .sum()
                    };
                    StepView {
                        number: index + 1,
                        what: match step {
                            Step::Send { template } => format!("send {template}"),
                            Step::Wait { duration } => {
                                format!("wait {}", describe_duration(*duration))
                            }
                            Step::If { condition } => format!("if {condition}"),
                        },
                        reached,
                        sent: sent_as(&["sent"]),
                        failed: sent_as(&["failed", "suppressed", "unknown"]),
                        exits,
                    }
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
