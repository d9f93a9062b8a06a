//! Email templates: one folder per email under `ROSTER_TEMPLATES` (`subject`,
//! `body.txt`, `body.html`), rendered with minijinja. Folders starting with `_` hold
//! shared parts (`_layout.html`) that bodies extend or include. HTML is escaped, text
//! and subject are not; an undefined variable is an error, so `roster check` catches a
//! misspelt name before any contact gets an email with a hole in it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value};

/// The three parts every email folder has.
const PARTS: [&str; 3] = ["subject", "body.txt", "body.html"];

/// All templates, loaded and compiled once.
pub struct Templates {
    env: Environment<'static>,
    names: BTreeSet<String>,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the templates folder {}: {source}", .dir.display())]
    Folder {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("template {name}: {part} is missing")]
    MissingPart { name: String, part: &'static str },
    #[error("there is no template named {0:?}")]
    Unknown(String),
    #[error("template {name}/{part}: {message}")]
    Invalid {
        name: String,
        part: &'static str,
        message: String,
    },
    #[error("template {name}: the subject renders empty")]
    BadSubject { name: String },
}

impl Templates {
    /// Loads every email folder of `dir` and compiles each part.
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let folder_error = |source| TemplateError::Folder {
            dir: dir.to_owned(),
            source,
        };
        let mut names = BTreeSet::new();
        for entry in std::fs::read_dir(dir).map_err(folder_error)? {
            let entry = entry.map_err(folder_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && !name.starts_with(['_', '.']) {
                for part in PARTS {
                    if !entry.path().join(part).is_file() {
                        return Err(TemplateError::MissingPart { name, part });
                    }
                }
                names.insert(name);
            }
        }
        let mut env = Environment::new();
        env.set_loader(minijinja::path_loader(dir));
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        let templates = Self { env, names };
        for name in &templates.names {
            for part in PARTS {
                templates
                    .env
                    .get_template(&format!("{name}/{part}"))
                    .map_err(|e| invalid(name, part, &e))?;
            }
        }
        Ok(templates)
    }

    /// No templates: for a configuration without a templates folder and without sends.
    pub fn empty() -> Self {
        Self {
            env: Environment::new(),
            names: BTreeSet::new(),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The names under `event.data` template `name` uses: the data variables of a
    /// transactional send.
    pub fn data_variables(&self, name: &str) -> BTreeSet<String> {
        PARTS
            .iter()
            .filter_map(|part| self.env.get_template(&format!("{name}/{part}")).ok())
            .flat_map(|template| template.undeclared_variables(true))
            .filter_map(|path| {
                let rest = path.strip_prefix("event.data.")?;
                Some(rest.split('.').next().unwrap_or(rest).to_owned())
            })
            .collect()
    }

    /// Renders template `name` with `context` (`contact`, `event`, `workflow`, ...).
    pub fn render(&self, name: &str, context: &Value) -> Result<RenderedEmail, TemplateError> {
        if !self.contains(name) {
            return Err(TemplateError::Unknown(name.to_owned()));
        }
        let part = |part: &'static str| {
            self.env
                .get_template(&format!("{name}/{part}"))
                .and_then(|template| template.render(context))
                .map_err(|e| invalid(name, part, &e))
        };
        // Line breaks (a name typed with one) become spaces when the header is written.
        let subject = part("subject")?.trim().to_owned();
        if subject.is_empty() {
            return Err(TemplateError::BadSubject {
                name: name.to_owned(),
            });
        }
        Ok(RenderedEmail {
            subject,
            text: part("body.txt")?,
            html: part("body.html")?,
        })
    }
}

fn invalid(name: &str, part: &'static str, error: &minijinja::Error) -> TemplateError {
    // minijinja's Display names the line; its detail says what is wrong there.
    let mut message = error.to_string();
    if let Some(detail) = error.detail() {
        message = format!("{message} ({detail})");
    }
    TemplateError::Invalid {
        name: name.to_owned(),
        part,
        message,
    }
}
