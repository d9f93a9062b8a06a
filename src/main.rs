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
    /// Forward the stored events that happened since a date to [forward.tinybird]
    /// and [forward.clickhouse], with a progress bar.
    ///
    /// Puts them in each destination's outbox and sends them now, in order. Running it
    /// again sends them again, and the destinations count each svix-id once. Events it
    /// could not send stay in the outbox for `roster serve`. Needs DATABASE_URL.
    Forward {
        /// The first day (`2026-01-31`, UTC) or moment (RFC 3339) to forward from.
        #[arg(long, value_parser = parse_since)]
        since: chrono::DateTime<chrono::Utc>,
    },
    /// Read Clerk's Backend API: backfill the audience, or reconcile it.
    ///
    /// Needs CLERK_SECRET_KEY (and DATABASE_URL); CLERK_API_URL is
    /// https://api.clerk.com unless set.
    Clerk {
        #[command(subcommand)]
        command: ClerkCommand,
    },
    /// Sign a sample Clerk event and post it to the running Roster.
    ///
    /// The event is shaped as Clerk sends it, timed now, for the person at --email
    /// (the same address is the same user each time), and signed with the first
    /// CLERK_WEBHOOK_SECRET, so the audience, a workflow and its email (in ./outbox/
    /// without SMTP_URL) can be seen without a Clerk instance. Posted to --url, else to
    /// /webhooks/clerk on ROSTER_ADDR.
    SendTestEvent {
        /// The event type: user.created, session.created, subscriptionItem.freeTrialEnding, ...
        event_type: String,
        /// Whose event it is.
        #[arg(long, default_value = roster::clerk::samples::DEFAULT_EMAIL)]
        email: String,
        /// Where to post it (default: http://ROSTER_ADDR/webhooks/clerk).
        #[arg(long)]
        url: Option<url::Url>,
    },
}

#[derive(Subcommand)]
enum ClerkCommand {
    /// Apply every user and waitlist entry Clerk lists to the contacts.
    ///
    /// Pages GET /v1/users and GET /v1/waitlist_entries, 500 at a time, oldest first,
    /// within Clerk's rate limit (waiting out a 429 for its Retry-After). Each is
    /// applied as a user.created or waitlistEntry.created delivery would be: never
    /// older over newer, and a deleted user stays deleted. Each page commits with its
    /// place, so a backfill that stopped (killed, Clerk unreachable) resumes there, and
    /// running it again changes nothing more. No workflow starts unless --workflows
    /// is given.
    Backfill {
        /// Start the workflows on user.created and waitlistEntry.created (and the
        /// lifecycle events) for each person, at most once each.
        #[arg(long)]
        workflows: bool,
    },
    /// Report drift between Clerk's users and the contacts; --fix repairs it.
    ///
    /// Drift: users in Clerk without a contact, contacts of users Clerk no longer has,
    /// and fields that differ (email, names, banned, locked). --fix applies each listed
    /// user as its newest user.updated, and a user Clerk no longer has as a
    /// user.deleted now. The figures of the last reconcile are roster_clerk_drift in
    /// /metrics.
    Reconcile {
        /// Repair the drift found.
        #[arg(long)]
        fix: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        println!(
            "roster {LONG_VERSION}\n\nCommands: serve, migrate, check, import, export, replay, clerk, send-test-event. `roster --help` tells more."
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
/// `--since`: a UTC day or an RFC 3339 moment.
fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.to_utc())
        .map_err(|_| format!("{text:?} is not a day (2026-01-31) or an RFC 3339 time"))
}

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

/// `roster clerk backfill` and `roster clerk reconcile`.
async fn clerk(settings: &Settings, command: ClerkCommand) -> anyhow::Result<()> {
    use roster::clerk::backend::{ClerkApi, backfill, reconcile};
    let api = ClerkApi::new(&settings.clerk_api)?;
    let pool = Database::open(settings)?.pool(2);
    db::migrate(&pool).await?;
    let clerk = &settings.file.clerk;
    register_mapped_properties(&mut *pool.acquire().await?, &clerk.properties).await?;
    match command {
        ClerkCommand::Backfill {
            workflows: with_workflows,
        } => {
            let workflows = if with_workflows {
                Some(workflows::load(settings)?.0)
            } else {
                None
            };
            let context = backfill::Context {
                settings: clerk,
                user_settings: &clerk.user_created,
                workflows: workflows.as_ref(),
                mode: roster::clerk::sync::Mode::Live,
            };
            let summary =
                backfill::backfill(&pool, &api, &context, &progress_bar("objects")).await?;
            for (name, counts) in [
                ("users", &summary.users),
                ("waitlist entries", &summary.waitlist_entries),
            ] {
                for (id, why) in &counts.skipped {
                    println!("{id}: skipped: {why}");
                }
                let resumed = if counts.resumed_at > 0 {
                    format!(" (resumed at {})", counts.resumed_at)
                } else {
                    String::new()
                };
                println!(
                    "{name}: {} listed{resumed}: {} contacts created, {} updated, {} unchanged, {} without an email address, {} skipped",
                    counts.listed,
                    counts.created,
                    counts.updated,
                    counts.unchanged,
                    counts.no_email,
                    counts.skipped.len()
                );
            }
            println!("{} workflow runs started", summary.runs_started);
            Ok(())
        }
        ClerkCommand::Reconcile { fix } => {
            let run = reconcile::begin(&pool).await?;
            let drift =
                reconcile::reconcile(&pool, &api, clerk, fix, run, &progress_bar("users")).await?;
            for user_id in &drift.missing_in_roster {
                println!("{user_id}: in Clerk, no contact");
            }
            for user_id in &drift.missing_in_clerk {
                println!("{user_id}: a contact, not in Clerk");
            }
            for (user_id, fields) in &drift.different {
                println!("{user_id}: differs: {}", fields.join(", "));
            }
            for (id, why) in &drift.skipped {
                println!("{id}: skipped: {why}");
            }
            println!(
                "drift: {} in Clerk only, {} in Roster only, {} different; {} fixed",
                drift.missing_in_roster.len(),
                drift.missing_in_clerk.len(),
                drift.different.len(),
                drift.fixed
            );
            Ok(())
        }
    }
}

/// `roster send-test-event`: a sample event, signed, posted to the running Roster.
async fn send_test_event(
    settings: &Settings,
    event_type: &str,
    email: &str,
    url: Option<url::Url>,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let secret = settings.clerk_webhook_secrets.first().ok_or_else(|| {
        anyhow::anyhow!("CLERK_WEBHOOK_SECRET is not set: the event is signed with it (scripts/run keeps one in .roster/webhook-secret)")
    })?;
    let email = roster::contacts::input::normalise_email(email.to_owned())
        .map_err(|why| anyhow::anyhow!("--email: {why}"))?;
    let event = roster::clerk::samples::sample_event(event_type, &email, chrono::Utc::now())
        .map_err(|why| anyhow::anyhow!("{why}"))?;
    let body = serde_json::to_vec(&event)?;
    let id = format!("msg_test{}", uuid::Uuid::now_v7().simple());
    let target = match url {
        Some(url) => url,
        None => {
            let mut addr = settings.addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            url::Url::parse(&format!("http://{addr}/webhooks/clerk"))?
        }
    };
    let client = reqwest::Client::new();
    let response = roster::clerk::signature::signed_delivery(
        &client,
        target.clone(),
        secret.expose_secret(),
        &id,
        body,
    )?
    .send()
    .await
    .map_err(|e| anyhow::anyhow!("cannot post to {target}: is Roster running? ({e})"))?;
    let status = response.status();
    let answer = response.text().await.unwrap_or_default();
    println!("{event_type} for {email} ({id}): {status} {answer}");
    anyhow::ensure!(status.is_success(), "Roster refused the event");
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
        Command::Forward { since } => {
            let pool = Database::open(&settings)?.pool(2);
            db::migrate(&pool).await?;
            let forwarder = roster::forward::Forwarder::new(&settings.file.forward)?;
            let progress = progress_bar("events");
            let done = roster::forward::backfill(&pool, &forwarder, since, &progress).await?;
            println!(
                "forwarded {} events since {since} to {}",
                done.forwarded,
                forwarder.names().join(" and ")
            );
            Ok(())
        }
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
        Command::Clerk { command } => clerk(&settings, command).await,
        Command::SendTestEvent {
            event_type,
            email,
            url,
        } => send_test_event(&settings, &event_type, &email, url).await,
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
