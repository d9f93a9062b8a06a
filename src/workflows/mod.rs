//! Workflows: definitions from the config file, runs started by events in the same
//! transaction as the event, and the engine that runs each step as a job.

pub mod check;
pub mod context;
pub mod definition;
pub mod deliveries;
pub mod delivery;
pub mod engine;
pub mod outbound;
pub mod runs;
pub mod state;
pub mod transactional;
pub mod versions;

pub use definition::TRANSACTIONAL;
use definition::{Workflow, check_workflows};

use crate::config::Settings;
use crate::email::templates::Templates;

/// Job kind of one workflow step; payload `{"run": uuid, "step": n}`.
pub const STEP_JOB: &str = "workflow.step";

/// The checked workflows, looked up by trigger and by name, and the webhook endpoints
/// that hear of the same events (so whatever starts runs also notifies them).
#[derive(Debug, Clone, Default)]
pub struct Workflows {
    list: Vec<Workflow>,
    webhooks: std::sync::Arc<crate::webhooks::Endpoints>,
}

impl Workflows {
    pub fn new(list: Vec<Workflow>) -> Self {
        Self {
            list,
            webhooks: Default::default(),
        }
    }

    /// These workflows, with these endpoints notified of events.
    pub fn with_webhooks(self, webhooks: std::sync::Arc<crate::webhooks::Endpoints>) -> Self {
        Self { webhooks, ..self }
    }

    pub fn webhooks(&self) -> &std::sync::Arc<crate::webhooks::Endpoints> {
        &self.webhooks
    }

    pub fn triggered_by<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a Workflow> + 'a {
        self.list.iter().filter(move |w| w.trigger == event)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Workflow> {
        self.list.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Workflow> {
        self.list.iter().find(|w| w.name == name)
    }

    /// Whether any workflow sends marketing email (which needs unsubscribe links).
    pub fn sends_marketing(&self) -> bool {
        self.senders().any(|w| !w.transactional)
    }

    /// The workflows that send email.
    fn senders(&self) -> impl Iterator<Item = &Workflow> {
        self.list.iter().filter(|w| {
            w.steps
                .iter()
                .any(|s| matches!(s, definition::Step::Send { .. }))
        })
    }
}

/// Loads the templates and checks the workflows against them and the environment:
/// what `roster serve` needs to run workflows, and what `roster check` checks. Without
/// a templates folder (and without `ROSTER_TEMPLATES` naming one) there are no
/// templates, and a workflow that sends is told its template does not exist.
pub fn load(settings: &Settings) -> anyhow::Result<(Workflows, Templates)> {
    let templates = if settings.templates_required || settings.templates_dir.exists() {
        Templates::load(&settings.templates_dir)?
    } else {
        Templates::empty()
    };
    let (workflows, mut problems) =
        match check_workflows(&settings.file.workflows, Some(&templates)) {
            Ok(list) => (Workflows::new(list), Vec::new()),
            Err(problems) => (Workflows::new(Vec::new()), problems),
        };
    // The environment is checked against what is written, valid or not.
    let senders = || settings.file.workflows.iter().filter(|w| w.sends());
    let sends = senders().next().is_some();
    let sends_marketing = senders().any(|w| !w.transactional);
    if sends && settings.mail_from.is_none() {
        problems.push("MAIL_FROM must be set: workflows send email".to_owned());
    }
    if sends_marketing && settings.unsubscribe_secret.is_none() {
        problems.push(
            "ROSTER_UNSUBSCRIBE_SECRET must be set: workflows send marketing email, whose unsubscribe links it signs"
                .to_owned(),
        );
    }
    if !problems.is_empty() {
        anyhow::bail!(problems.join("\n"));
    }
    let webhooks = crate::webhooks::Endpoints::from_config(&settings.file);
    Ok((
        workflows.with_webhooks(std::sync::Arc::new(webhooks)),
        templates,
    ))
}
