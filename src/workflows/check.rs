//! `roster check`: the workflows and templates as `serve` would load them, every
//! template rendered and every condition evaluated against a sample contact and event,
//! every problem reported at once.

use super::context::{condition_holds, sample_context, sample_transactional_context};
use super::definition::Step;
use super::{Workflows, load};
use crate::config::Settings;

/// Checks workflows and templates: renders every template and evaluates every
/// condition against a sample contact and event. Returns the workflows and how many
/// templates there are.
pub fn check_workflows_and_templates(settings: &Settings) -> anyhow::Result<(Workflows, usize)> {
    let (workflows, templates) = load(settings)?;
    // Templates a workflow sends see a Clerk event; the others are sent through
    // `POST /api/v1/transactional` and see their data variables.
    let sent_by_workflows: Vec<&str> = workflows
        .iter()
        .flat_map(|w| &w.steps)
        .filter_map(|step| match step {
            Step::Send { template } => Some(template.as_str()),
            _ => None,
        })
        .collect();
    // Every problem at once, not the first.
    let mut problems = Vec::new();
    for name in templates.names() {
        let context = if sent_by_workflows.contains(&name) {
            sample_context("sample")
        } else {
            sample_transactional_context(&templates, name)
        };
        if let Err(error) = templates.render(name, &context) {
            problems.push(error.to_string());
        }
    }
    for workflow in workflows.iter() {
        let context = sample_context(&workflow.name);
        let conditions = workflow
            .exit_when
            .iter()
            .map(|c| ("exit_when".to_owned(), c))
            .chain(
                workflow
                    .steps
                    .iter()
                    .enumerate()
                    .filter_map(|(i, step)| match step {
                        Step::If { condition } => Some((format!("step {}", i + 1), condition)),
                        _ => None,
                    }),
            );
        for (place, condition) in conditions {
            if let Err(e) = condition_holds(condition, &context) {
                problems.push(format!(
                    "workflow {:?}: {place}: {condition:?} fails on a sample contact: {e}",
                    workflow.name
                ));
            }
        }
    }
    if !problems.is_empty() {
        anyhow::bail!(problems.join("\n"));
    }
    let count = templates.names().count();
    Ok((workflows, count))
}
