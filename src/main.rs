//! The `roster` command line. Everything it runs lives in the library.

use clap::{Parser, Subcommand};
use roster::config::Settings;
use roster::db::Database;
use roster::email::templates::{Templates, sample_context};
use roster::startup::Application;
use roster::{db, telemetry};

/// Roster: a self-hosted audience manager for apps built on Clerk.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve HTTP (webhooks, API, dashboard) and run the worker.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the environment and the config file (ROSTER_CONFIG), then exit.
    Check,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Before any thread exists: loading .env sets process environment variables.
    let result = load_dotenv().and_then(|()| {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(run(cli.command))
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

/// Loads every template and renders it against a sample contact; returns how many.
/// A missing folder is an error only when `ROSTER_TEMPLATES` names it.
fn check_templates(settings: &Settings) -> anyhow::Result<usize> {
    if !settings.templates_dir.exists() && std::env::var_os("ROSTER_TEMPLATES").is_none() {
        return Ok(0);
    }
    let templates = Templates::load(&settings.templates_dir)?;
    let context = sample_context();
    for name in templates.names() {
        templates.render(name, &context)?;
    }
    Ok(templates.names().count())
}

async fn run(command: Command) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    match command {
        Command::Check => {
            let templates = check_templates(&settings)?;
            println!(
                "configuration is valid ({}); {templates} templates render",
                settings.config_path.display()
            );
            Ok(())
        }
        Command::Migrate => {
            telemetry::init(&settings.log_filter);
            let database =
                Database::from_settings(settings.require_database_url()?, &settings.database)?;
            db::migrate(&database.pool(1)).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            telemetry::init(&settings.log_filter);
            let database =
                Database::from_settings(settings.require_database_url()?, &settings.database)?;
            db::migrate(&database.pool(1)).await?;
            if settings.clerk_webhook_secrets.is_empty() {
                tracing::warn!("CLERK_WEBHOOK_SECRET is not set: /webhooks/clerk answers 401");
            }
            let app = Application::build(&settings, database)?;
            tracing::info!(addr = %settings.addr, port = app.port(), "roster is listening");
            app.run_until_stopped().await?;
            Ok(())
        }
    }
}
