//! Workflows as code: the `[[workflows]]` tables of the config file, parsed and checked
//! once at start (and by `roster check`), with errors that name the workflow and step.

use std::collections::HashSet;
use std::time::Duration;

use minijinja::Environment;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::workflows::{EntryRule, StepConfig, WorkflowConfig};
use crate::email::templates::Templates;

/// The workflow name of the runs `POST /api/v1/transactional` starts: one send of the
/// template the run's event names (`transactionalId`), to the address it was asked for.
pub const TRANSACTIONAL: &str = "transactional";

/// The workflow name of a campaign's runs: one marketing send of the template the
/// run's event names, to each recipient once.
pub const CAMPAIGN: &str = "campaign";

/// A checked step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Send {
        template: String,
    },
    Wait {
        duration: Duration,
    },
    /// Continue only if the expression holds; otherwise the run exits.
    If {
        condition: String,
    },
}

/// A checked workflow. Stored as JSON (`workflow_versions.definition`) for the runs
/// that start on it; `version` is the SHA-256 of that JSON.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Workflow {
    pub name: String,
    pub trigger: String,
    pub entry: EntryRule,
    pub transactional: bool,
    /// Opens and clicks tracked: unset means marketing email is, transactional is not.
    /// (Left out of the stored definition when unset, so versions stay as they were.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<bool>,
    pub exit_when: Option<String>,
    pub steps: Vec<Step>,
    #[serde(skip)]
    pub version: String,
}

/// The problems of the config file's workflows, checked without the templates (which
/// `load` checks with them): what `Settings::from_env_checking` reports with the rest.
pub fn file_problems(file: &crate::config::ConfigFile) -> Vec<String> {
    check_workflows(&file.workflows, None)
        .err()
        .unwrap_or_default()
}

impl Workflow {
    /// Whether its email gets the open pixel and tracked links.
    pub fn tracked(&self) -> bool {
        self.track.unwrap_or(!self.transactional)
    }

    /// The definition as stored, and its version.
    pub fn definition(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a workflow serialises")
    }

    /// Sets `version` from the definition.
    fn versioned(mut self) -> Self {
        let json = serde_json::to_vec(&self).expect("a workflow serialises");
        self.version = Sha256::digest(&json)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self
    }

    /// A stored definition, read back at `version`.
    pub fn from_stored(definition: serde_json::Value, version: &str) -> serde_json::Result<Self> {
        let mut workflow: Self = serde_json::from_value(definition)?;
        workflow.version = version.to_owned();
        Ok(workflow)
    }

    /// The one-step workflow of a campaign's recipient: marketing email (unsubscribe
    /// link, subscription checked right before the send).
    pub fn campaign(template: &str) -> Self {
        Self {
            transactional: false,
            name: CAMPAIGN.to_owned(),
            trigger: CAMPAIGN.to_owned(),
            ..Self::transactional(template)
        }
        .versioned()
    }

    /// The one-step workflow of a transactional send through the API.
    pub fn transactional(template: &str) -> Self {
        Self {
            name: TRANSACTIONAL.to_owned(),
            trigger: TRANSACTIONAL.to_owned(),
            entry: EntryRule::EveryTime,
            transactional: true,
            track: None,
            exit_when: None,
            steps: vec![Step::Send {
                template: template.to_owned(),
            }],
            version: String::new(),
        }
        .versioned()
    }
}

/// Checks every workflow against the templates; all problems at once.
pub fn check_workflows(
    configs: &[WorkflowConfig],
    templates: Option<&Templates>,
) -> Result<Vec<Workflow>, Vec<String>> {
    let expressions = Environment::new();
    let mut errors = Vec::new();
    let mut names = HashSet::new();
    let mut workflows = Vec::new();
    for config in configs {
        let name = &config.name;
        let mut fail = |problem: String| errors.push(format!("workflow {name:?}: {problem}"));
        if name.trim().is_empty() {
            fail("the name is empty".into());
        }
        if !names.insert(name.clone()) {
            fail("another workflow has the same name".into());
        }
        if name == TRANSACTIONAL {
            fail(format!(
                "{name:?} is reserved for the runs of transactional sends through the API"
            ));
        }
        if name == CAMPAIGN {
            fail(format!("{name:?} is reserved for the runs of campaigns"));
        }
        if config.trigger.trim().is_empty() {
            fail("the trigger is empty".into());
        }
        if config.steps.is_empty() {
            fail("it has no steps".into());
        }
        if let Some(expr) = &config.exit_when
            && let Err(e) = expressions.compile_expression(expr)
        {
            fail(format!("exit_when {expr:?} is not a valid expression: {e}"));
        }
        let mut steps = Vec::new();
        for (index, step) in config.steps.iter().enumerate() {
            let number = index + 1;
            match step {
                StepConfig::Send { send } => match templates {
                    Some(templates) if !templates.contains(send) => fail(format!(
                        "step {number}: there is no template named {send:?}"
                    )),
                    _ => steps.push(Step::Send {
                        template: send.clone(),
                    }),
                },
                StepConfig::Wait { wait } => match parse_duration(wait) {
                    Some(duration) => steps.push(Step::Wait { duration }),
                    None => fail(format!(
                        "step {number}: wait {wait:?} is not a duration such as 30m, 12h, 2d or 1w"
                    )),
                },
                StepConfig::If { condition } => match expressions.compile_expression(condition) {
                    Ok(_) => steps.push(Step::If {
                        condition: condition.clone(),
                    }),
                    Err(e) => fail(format!(
                        "step {number}: if {condition:?} is not a valid expression: {e}"
                    )),
                },
            }
        }
        workflows.push(
            Workflow {
                name: name.clone(),
                trigger: config.trigger.clone(),
                entry: config.entry,
                transactional: config.transactional,
                track: config.track,
                exit_when: config.exit_when.clone(),
                steps,
                version: String::new(),
            }
            .versioned(),
        );
    }
    if errors.is_empty() {
        Ok(workflows)
    } else {
        Err(errors)
    }
}

/// A duration as people say it: 172800 seconds → "2 days".
pub fn describe_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let units = [
        (604_800, "week"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
    ];
    for (size, name) in units {
        if seconds >= size && seconds.is_multiple_of(size) {
            let n = seconds / size;
            return format!("{n} {name}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("{seconds} seconds")
}

/// `45s`, `30m`, `12h`, `2d`, `1w`: a whole number and one unit.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        "w" => 7 * 24 * 60 * 60,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(seconds)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Vec<WorkflowConfig> {
        #[derive(Deserialize)]
        struct File {
            workflows: Vec<WorkflowConfig>,
        }
        toml::from_str::<File>(toml).unwrap().workflows
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1w"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("2 days"), None);
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("-1h"), None);
    }

    #[test]
    fn errors_name_the_workflow_and_the_step() {
        let configs = parse(
            r#"
            [[workflows]]
            name = "drip"
            trigger = "user.created"
            exit_when = "contact.userId ==="
            steps = [{ send = "welcome" }, { wait = "2 days" }, { if = "contact.subscribed and" }]
            "#,
        );
        let errors = check_workflows(&configs, None).unwrap_err().join("\n");
        assert!(errors.contains(r#"workflow "drip": exit_when"#), "{errors}");
        assert!(
            errors.contains(r#"workflow "drip": step 2: wait "2 days""#),
            "{errors}"
        );
        assert!(
            errors.contains(r#"workflow "drip": step 3: if"#),
            "{errors}"
        );
    }

    #[test]
    fn misspelt_or_mixed_steps_are_refused_when_parsing() {
        for steps in [
            r#"[{ sned = "welcome" }]"#,
            r#"[{ send = "welcome", wait = "1d" }]"#,
        ] {
            let toml = format!("name = \"a\"\ntrigger = \"x\"\nsteps = {steps}\n");
            let error = toml::from_str::<WorkflowConfig>(&toml).expect_err(steps);
            assert!(error.to_string().contains("steps"), "{error}");
        }
    }
}
