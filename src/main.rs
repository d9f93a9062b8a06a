//! The `roster` command line. Everything it runs lives in the library.

use std::path::Path;

use clap::{Parser, Subcommand};
use roster::clerk::sync::facts::register_mapped_properties;
use roster::config::Settings;
use roster::db::Database;
use roster::startup::Application;
use roster::workflows::{self, Workflows};
use roster::{db, telemetry};

/// `roster --version`: the version and what it was built from.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit:   ",
    env!("ROSTER_BUILD_COMMIT"),
    " (",
    env!("ROSTER_BUILD_DATE"),
    ")\ncompiler: ",
    env!("ROSTER_BUILD_RUSTC"),
    "\ntarget:   ",
    env!("ROSTER_BUILD_TARGET"),
    " (",
    env!("ROSTER_BUILD_PROFILE"),
    ")"
);

/// Roster: a self-hosted audience manager for apps built on Clerk.
///
/// It receives Clerk's webhooks, keeps the contacts in step, runs the email workflows
/// and serves the Loops-compatible API, all configured from the environment (a .env
/// file in the working directory is read too; see README.md).
#[derive(Parser)]
#[command(version, long_version = LONG_VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve HTTP (webhooks, API, dashboard) and run the worker.
    ///
    /// Listens on ROSTER_ADDR (default 127.0.0.1:8080) for Clerk's webhooks at
    /// /webhooks/clerk (CLERK_WEBHOOK_SECRET), the API under /api (ROSTER_API_KEY),
    /// /healthz, /readyz and /metrics, and runs the workflow worker, which sends email
    /// through SMTP_URL (or to ./outbox/ without it) from MAIL_FROM. DATABASE_URL is
    /// required. SIGINT or SIGTERM stops it after in-flight requests and jobs finish.
    Serve,
    /// Apply pending database migrations and exit.
    ///
    /// Needs DATABASE_URL. `serve` applies them too; this is for deploys that migrate
    /// as a separate step.
    Migrate,
    /// Validate the environment and the config file (ROSTER_CONFIG), then exit.
    ///
    /// Reports every malformed variable and config entry at once, renders every
    /// template in ROSTER_TEMPLATES against a sample contact, and evaluates every
    /// workflow condition. Exits non-zero, naming each problem, when anything is wrong.
    /// Needs no database.
    Check,
    /// Import contacts from a Loops-style CSV file.
    ///
    /// The first line names the columns: `email` (required), `firstName`, `lastName`,
    /// `userId`, `userGroup`, `subscribed` (true/false), `source`, `notes`,
    /// `mailingLists` (list IDs separated by `;`); every other column is a custom
    /// property, created when missing with the type its values share. Each row updates
    /// the contact with its `userId` or `email`, or creates it, so running an import
    /// again changes nothing; empty cells leave fields as they are, and `subscribed`
    /// can unsubscribe but never resubscribes. Columns Roster sets itself (`createdAt`,
    /// `id`) are left out. Bad rows are reported with their line number and skipped;
    /// each row is written whole or not at all. No workflow starts. Needs DATABASE_URL.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
    },
    /// Export contacts to a CSV file that `roster import` reads back unchanged.
    ///
    /// Columns: `email`, `firstName`, `lastName`, `userId`, `userGroup`, `subscribed`,
    /// `source`, `notes`, `mailingLists` (IDs separated by `;`), `createdAt`, then one
    /// per custom property. Everyone, or the contacts of a saved segment, of a mailing
    /// list, or of both. Needs DATABASE_URL.
    Export {
        /// Only the contacts of this segment (its ID).
        #[arg(long)]
        segment: Option<String>,
        /// Only the contacts on this mailing list.
        #[arg(long)]
        list: Option<String>,
        /// The CSV file to write (replaced if it exists).
        file: std::path::PathBuf,
    },
    /// Apply the stored Clerk event log to the contacts again, oldest first.
    ///
    /// For after a change of the [clerk.*] settings (a user group, names, delete or
    /// unsubscribe) or a fix: every stored user and waitlist event is applied again
    /// with today's settings, under the same rules as a delivery, except that an event
    /// as new as what its contact reflects is applied again. Running it twice leaves
    /// the contacts as once does. Workflows are not started unless --workflows is
    /// given; then each starts at most as the delivery would have started it. Needs
    /// DATABASE_URL.
    Replay {
        /// Also start the workflows the events trigger (entry rules still hold).
        #[arg(long)]
        workflows: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        println!(
            "roster {LONG_VERSION}\n\nCommands: serve, migrate, check, import, export, replay. `roster --help` tells more."
        );
        return std::process::ExitCode::SUCCESS;
    };
    // Before any thread exists: loading .env sets process environment variables.
    let result = load_dotenv().and_then(|()| {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(run(command))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("roster: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A `.env` file in the working directory fills in what the real environment does not
/// set. Its lines can hold secrets, so a malformed one is not quoted.
fn load_dotenv() -> anyhow::Result<()> {
    match dotenvy::from_path(".env") {
        Ok(()) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(dotenvy::Error::LineParse(_, position)) => {
            anyhow::bail!(".env has a malformed line (at character {position})")
        }
        Err(e) => anyhow::bail!("cannot read .env: {e}"),
    }
}

/// A progress bar on stderr (hidden when it is not a terminal) counting `unit`.
fn progress_bar(unit: &str) -> indicatif::ProgressBar {
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{eta}} left)");
    indicatif::ProgressBar::new(0)
        .with_style(indicatif::ProgressStyle::with_template(&template).expect("a valid template"))
}

/// Says how many active runs each workflow version the file no longer defines still
/// has (they finish on it), when the database can be reached; says why not otherwise.
async fn report_older_versions(settings: &Settings, workflows: &Workflows) {
    if settings.database_url.is_none() {
        println!("DATABASE_URL is not set: active runs of older workflow versions not checked");
        return;
    };
    let report = async {
        let pool = Database::open(settings)?.pool(1);
        let mut conn = pool.acquire().await?;
        let versions = roster::workflows::versions::versions_in_use(&mut conn, workflows).await?;
        anyhow::Ok(versions)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), report).await {
        Ok(Ok(versions)) => {
            for (workflow, version) in versions.iter().filter(|(_, v)| !v.current) {
                let place = if workflows.get(workflow).is_some() {
                    "an older version"
                } else {
                    "no longer in the file"
                };
                println!(
                    "workflow {workflow:?}: {} active runs on {place} ({}), which they finish on",
                    version.active_runs,
                    &version.version[..12]
                );
            }
        }
        Ok(Err(error)) => println!("active runs of older workflow versions not checked: {error:#}"),
        Err(_) => println!(
            "active runs of older workflow versions not checked: the database did not answer in 10 s"
        ),
    }
}

/// `roster import`: `file` into the contacts, with a progress bar, each skipped row
/// and a summary.
async fn import(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let pool = Database::open(settings)?.pool(1);
    let progress = progress_bar("rows");
    let summary = roster::import::import_csv(&pool, &settings.file, file, &progress).await?;
    for (name, kind) in &summary.new_properties {
        println!("created the custom property {name} ({})", kind.as_str());
    }
    for (line, why) in &summary.skipped {
        println!("line {line}: skipped: {why}");
    }
    println!(
        "{}: {} rows, {} contacts created, {} updated, {} skipped",
        file.display(),
        summary.rows,
        summary.created,
        summary.updated,
        summary.skipped.len()
    );
    Ok(())
}

/// `roster export`: the CSV to `file`, with a progress bar and a summary.
async fn export(
    settings: &Settings,
    segment: Option<&str>,
    list: Option<&str>,
    file: &Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    let pool = Database::open(settings)?.pool(1);
    db::migrate(&pool).await?;
    let filter = roster::export::audience(&pool, &settings.file, segment, list)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let mut pages = roster::export::CsvPages::new(&pool, &settings.file, filter).await?;
    let progress = progress_bar("contacts");
    progress.set_length(u64::try_from(pages.count().await?).unwrap_or(0));
    // Written beside the file and renamed when whole: a failed export leaves the
    // file that was there.
    let partial = file.with_extension("csv.partial");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", partial.display()))?,
    );
    let mut exported = 0;
    while let Some((csv, contacts)) = pages.next_chunk().await? {
        out.write_all(&csv)?;
        exported += contacts;
        progress.inc(contacts as u64);
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&partial, file)?;
    progress.finish_and_clear();
    println!("{}: {exported} contacts exported", file.display());
    Ok(())
}

async fn run(command: Command) -> anyhow::Result<()> {
    let settings = Settings::from_env_checking(workflows::definition::file_problems)?;
    match command {
        Command::Import { file } => import(&settings, &file).await,
        Command::Export {
            segment,
            list,
            file,
        } => export(&settings, segment.as_deref(), list.as_deref(), &file).await,
        Command::Replay {
            workflows: with_workflows,
        } => {
            let pool = Database::open(&settings)?.pool(1);
            db::migrate(&pool).await?;
            let workflows = if with_workflows {
                Some(workflows::load(&settings)?.0)
            } else {
                None
            };
            let progress = progress_bar("events");
            let summary =
                roster::replay::replay(&pool, &settings.file.clerk, workflows.as_ref(), &progress)
                    .await?;
            for (svix_id, why) in &summary.conflicts {
                println!("{svix_id}: not applied: {why}");
            }
            println!(
                "replayed {} events: {} changed a contact, {} changed nothing, {} are turned off, {} could not be applied; {} workflow runs started",
                summary.events,
                summary.changed,
                summary.unchanged,
                summary.disabled,
                summary.conflicts.len(),
                summary.runs_started
            );
            Ok(())
        }
        Command::Check => {
            let (workflows, templates) =
                roster::workflows::check::check_workflows_and_templates(&settings)?;
            println!(
                "configuration is valid ({}); {templates} templates render",
                settings.config_path.display()
            );
            report_older_versions(&settings, &workflows).await;
            Ok(())
        }
        Command::Migrate => {
            telemetry::init(&settings.log_filter, settings.log_format);
            let database = Database::open(&settings)?;
            db::migrate(&database.pool(1)).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            telemetry::init(&settings.log_filter, settings.log_format);
            let database = Database::open(&settings)?;
            let pool = database.pool(1);
            db::migrate(&pool).await?;
            register_mapped_properties(
                &mut *pool.acquire().await?,
                &settings.file.clerk.properties,
            )
            .await?;
            drop(pool);
            if settings.clerk_webhook_secrets.is_empty() {
                tracing::warn!("CLERK_WEBHOOK_SECRET is not set: /webhooks/clerk answers 401");
            }
            let app = Application::build(&settings, database, Path::new("outbox"))?;
            tracing::info!(addr = %settings.addr, port = app.port(), "roster is listening");
            app.run_until_stopped().await
        }
    }
}
