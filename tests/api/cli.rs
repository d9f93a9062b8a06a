//! The `roster` binary itself: `check`, start-up errors, and shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{database_url, free_port, roster, wait_until_ready};

/// `roster check` of roster.example.toml with the shipped templates.
fn check_example_config() -> Command {
    let mut command = roster();
    command
        .args(["check"])
        .env(
            "ROSTER_CONFIG",
            concat!(env!("CARGO_MANIFEST_DIR"), "/roster.example.toml"),
        )
        .env(
            "ROSTER_TEMPLATES",
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        );
    command
}

#[test]
fn check_accepts_the_example_config_and_shipped_templates() {
    let output = check_example_config()
        .env("MAIL_FROM", "Acme <hello@acme.test>")
        .env("ROSTER_UNSUBSCRIBE_SECRET", "0123456789abcdef0123")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(stdout.contains("9 templates render"), "{stdout}");
}

/// `roster check` of a config file with these workflows (and the shipped templates,
/// MAIL_FROM and an unsubscribe secret): its stderr, after asserting it failed.
fn check_failure_with_workflows(workflows_toml: &str) -> String {
    let dir = std::env::temp_dir().join(format!("roster-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("roster.toml");
    std::fs::write(&config, workflows_toml).unwrap();
    let output = check_example_config()
        .env("ROSTER_CONFIG", &config)
        .env("MAIL_FROM", "Acme <hello@acme.test>")
        .env("ROSTER_UNSUBSCRIBE_SECRET", "0123456789abcdef0123")
        .output()
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_names_the_workflow_and_step_that_are_wrong() {
    let stderr = check_failure_with_workflows(
        "[[workflows]]\nname = \"drip\"\ntrigger = \"user.created\"\n\
         steps = [{ send = \"welcome\" }, { send = \"no_such_template\" }]\n",
    );
    let expected = r#"workflow "drip": step 2: there is no template named "no_such_template""#;
    assert!(stderr.contains(expected), "{stderr}");
}

#[test]
fn check_catches_a_misspelt_condition() {
    let stderr = check_failure_with_workflows(
        "[[workflows]]\nname = \"drip\"\ntrigger = \"user.created\"\n\
         steps = [{ if = \"contact.subscibed\" }, { send = \"welcome\" }]\n",
    );
    assert!(
        stderr.contains(r#"workflow "drip": step 1: "contact.subscibed""#),
        "{stderr}"
    );
}

#[test]
fn check_says_a_sending_workflow_needs_mail_from() {
    let output = check_example_config().output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("MAIL_FROM must be set"));
}

#[test]
fn check_says_every_missing_setting_at_once() {
    let output = check_example_config().output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MAIL_FROM must be set"), "{stderr}");
    assert!(
        stderr.contains("ROSTER_UNSUBSCRIBE_SECRET must be set"),
        "{stderr}"
    );
}

#[test]
fn check_takes_event_data_of_an_event_workflow_as_serve_runs_it() {
    let dir = std::env::temp_dir().join(format!("roster-event-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("upgraded")).unwrap();
    std::fs::write(
        dir.join("upgraded/subject"),
        "Welcome to {{ event.data.plan }}",
    )
    .unwrap();
    std::fs::write(
        dir.join("upgraded/body.txt"),
        "{{ event.data.plan.name }} {{ contact.firstName }}",
    )
    .unwrap();
    std::fs::write(
        dir.join("upgraded/body.html"),
        "<p>{{ event.data.plan }}</p>",
    )
    .unwrap();
    let workflows = |condition: &str| {
        format!(
            "[[workflows]]\nname = \"upgrade\"\ntrigger = \"planUpgraded\"\n\
             steps = [{{ if = \"{condition}\" }}, {{ send = \"upgraded\" }}]\n"
        )
    };
    let run = |toml: String| {
        let config = dir.join(format!("{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&config, toml).unwrap();
        roster()
            .args(["check"])
            .env("ROSTER_CONFIG", &config)
            .env("ROSTER_TEMPLATES", &dir)
            .env("MAIL_FROM", "Acme <hello@acme.test>")
            .env("ROSTER_UNSUBSCRIBE_SECRET", "0123456789abcdef0123")
            .output()
            .unwrap()
    };
    let fine = run(workflows("event.data.plan == 'pro'"));
    assert!(fine.status.success(), "{fine:?}");
    let misspelt = run(workflows("contact.fristName == 'Ada'"));
    assert!(!misspelt.status.success());
    assert!(
        String::from_utf8_lossy(&misspelt.stderr).contains("contact.fristName"),
        "{misspelt:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_names_a_template_that_does_not_render() {
    let dir = std::env::temp_dir().join(format!("roster-bad-template-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("promo")).unwrap();
    std::fs::write(dir.join("promo/subject"), "Hi {{ contact.nickname }}").unwrap();
    std::fs::write(dir.join("promo/body.txt"), "text").unwrap();
    std::fs::write(dir.join("promo/body.html"), "<p>html</p>").unwrap();
    let output = roster()
        .args(["check"])
        .env("ROSTER_TEMPLATES", &dir)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("promo/subject"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_names_every_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("roster-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("roster.toml");
    std::fs::write(&config, "[clerk.user_deleted]\naction = \"archive\"\n").unwrap();
    let output = roster()
        .args(["check"])
        .env("ROSTER_CONFIG", &config)
        .env("CLERK_WEBHOOK_SECRET", "whsec_%%%")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("roster.toml"), "{stderr}");
    assert!(stderr.contains("archive"), "{stderr}");
    assert!(stderr.contains("not valid base64"), "{stderr}");
    assert!(!stderr.contains("%%%"), "the secret leaked: {stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn malformed_dotenv_line_is_reported_without_its_secret() {
    let dir = std::env::temp_dir().join(format!("roster-dotenv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".env"), "ROSTER_API_KEY='hunter2\n").unwrap();
    let output = roster().args(["check"]).current_dir(&dir).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(".env"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the secret leaked: {stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn serve_without_database_url_says_so() {
    let output = roster().args(["serve"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
}

#[sqlx::test]
async fn serve_migrates_logs_json_and_stops_cleanly_on_sigterm(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let url = database_url(&db);
    let port = free_port();
    let mut child = roster()
        .args(["serve"])
        .env("DATABASE_URL", url)
        .env("ROSTER_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .env("ROSTER_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    wait_until_ready(port).await;

    // Wrong keys until the throttle logs a warning inside the request's span: the log
    // names the route, never the raw target with its address.
    let find =
        format!("http://127.0.0.1:{port}/api/v1/contacts/find?email=secret.person%40example.com");
    let client = reqwest::Client::new();
    for _ in 0..11 {
        client
            .get(&find)
            .bearer_auth("wrong-key")
            .send()
            .await
            .unwrap();
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "roster did not stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");

    // ROSTER_LOG_FORMAT=json: every line one JSON object.
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "roster is listening" && l["level"] == "INFO"),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "API key failures throttled"
                && l["span"]["route"] == "/api/v1/contacts/find"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("secret.person"),
        "the address leaked: {stderr}"
    );
}

#[test]
fn version_names_the_build() {
    for args in [&["--version"][..], &[][..]] {
        let output = roster().args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.starts_with(&format!("roster {}", env!("CARGO_PKG_VERSION"))),
            "{stdout}"
        );
        assert!(
            stdout.contains("commit:") && stdout.contains("compiler: rustc"),
            "{stdout}"
        );
    }
}

#[sqlx::test]
async fn import_brings_a_loops_csv_in_and_is_idempotent(_: PgPoolOptions, db: PgConnectOptions) {
    let dir = std::env::temp_dir().join(format!("roster-import-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("audience.csv");
    std::fs::write(
        &file,
        "email,firstName,lastName,userId,userGroup,subscribed,source,plan,seats,trialEnds,zip,createdAt\n\
         ada@example.com,Ada,Lovelace,u_1,Founders,true,Loops,Pro,3,2026-01-17,02134,2024-01-01\n\
         not-an-address,Bad,Row,,,,,,,,,\n\
         grace@example.com,Grace,Hopper,,,no,,Free,1,,10001,\n\
         alan@example.com,Alan,Turing,,,maybe,,,,,,\n\
         \"Edsger@Example.com\",\"Dijkstra, Edsger\",,,,,,Team,12,2026-02-01,,\n",
    )
    .unwrap();
    let import = || {
        roster()
            .args(["import", file.to_str().unwrap()])
            .env("DATABASE_URL", database_url(&db))
            .output()
            .unwrap()
    };
    let first = import();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{first:?}");
    assert!(
        stdout.contains("created the custom property plan (string)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("created the custom property seats (number)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("created the custom property trialEnds (date)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("created the custom property zip (string)"),
        "a leading zero: {stdout}"
    );
    assert!(
        !stdout.contains("createdAt"),
        "Roster sets createdAt itself: {stdout}"
    );
    assert!(
        stdout.contains("line 3: skipped: Invalid email address."),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 5: skipped: `subscribed` must be true or false"),
        "{stdout}"
    );
    assert!(
        stdout.contains("5 rows, 3 contacts created, 0 updated, 2 skipped"),
        "{stdout}"
    );

    let pool = sqlx::PgPool::connect_with(db.clone()).await.unwrap();
    let contacts: Vec<(String, Option<String>, bool, String, serde_json::Value)> = sqlx::query_as(
        "select email, user_id, subscribed, source, properties from contacts order by email",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(contacts.len(), 3);
    assert_eq!(contacts[0].0, "Edsger@Example.com");
    assert_eq!(contacts[0].3, "Import");
    assert_eq!(
        contacts[1],
        (
            "ada@example.com".to_owned(),
            Some("u_1".to_owned()),
            true,
            "Loops".to_owned(),
            serde_json::json!({ "plan": "Pro", "seats": 3, "trialEnds": "2026-01-17T00:00:00.000Z", "zip": "02134" }),
        )
    );
    assert!(!contacts[2].2, "grace is unsubscribed");

    // Ada unsubscribes after the export was made: importing it again keeps her out.
    sqlx::query("update contacts set subscribed = false where email = 'ada@example.com'")
        .execute(&pool)
        .await
        .unwrap();
    let second = import();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains("5 rows, 0 contacts created, 3 updated, 2 skipped"),
        "{stdout}"
    );
    let count: i64 = sqlx::query_scalar("select count(*) from contacts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 3);
    let ada: bool =
        sqlx::query_scalar("select subscribed from contacts where email = 'ada@example.com'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!ada, "an import never resubscribes");
    pool.close().await;
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn import_refuses_a_file_without_an_email_column() {
    let file = std::env::temp_dir().join(format!("roster-import-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&file, "name\nAda\n").unwrap();
    let output = roster()
        .args(["import", file.to_str().unwrap()])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no `email` column"), "{stderr}");
    std::fs::remove_file(file).ok();
}

/// One search for a delivery's svix-id in the JSON log follows it from the webhook to
/// the SMTP server's answer: stored, run started, email handed to SMTP.
#[sqlx::test]
async fn the_log_follows_a_svix_id_from_the_webhook_to_smtp(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let url = database_url(&db);
    let port = free_port();
    let smtp = crate::smtp_server::SmtpServer::start().await;
    let config = std::env::temp_dir().join(format!("roster-trace-{port}.toml"));
    std::fs::write(
        &config,
        "[[workflows]]\nname = \"welcome\"\ntrigger = \"user.created\"\nsteps = [{ send = \"welcome\" }]\n",
    )
    .unwrap();
    let mut child = roster()
        .args(["serve"])
        .env("DATABASE_URL", url)
        .env("ROSTER_ADDR", format!("127.0.0.1:{port}"))
        .env("ROSTER_CONFIG", &config)
        .env(
            "ROSTER_TEMPLATES",
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        )
        .env("CLERK_WEBHOOK_SECRET", crate::helpers::SECRET)
        .env("MAIL_FROM", "Acme <hello@acme.test>")
        .env("ROSTER_UNSUBSCRIBE_SECRET", "trace-unsubscribe-secret-0123")
        .env("SMTP_URL", smtp.url())
        .env("RUST_LOG", "info")
        .env("ROSTER_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ready(port).await;

    let delivery = crate::helpers::Delivery::of(&crate::helpers::fixture("user.created"));
    let response = reqwest::Client::new()
        .post(format!("{base}/webhooks/clerk"))
        .header("content-type", "application/json")
        .header("svix-id", &delivery.id)
        .header("svix-timestamp", delivery.timestamp.to_string())
        .header("svix-signature", delivery.signature())
        .body(delivery.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    while smtp.messages().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "no email");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The outcome is logged right after SMTP answers; give it a moment, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    std::fs::remove_file(&config).unwrap();

    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let followed: Vec<String> = stderr
        .lines()
        .filter(|line| line.contains(&delivery.id))
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            line["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for step in ["webhook stored", "run started", "email handed to SMTP"] {
        assert!(
            followed.iter().any(|message| message == step),
            "{step:?} not found by the svix-id among {followed:?}:\n{stderr}"
        );
    }
}

#[sqlx::test]
async fn export_writes_the_file_and_says_how_many(pool: sqlx::PgPool) {
    sqlx::query(
        "insert into contacts (id, email, first_name, source) select gen_random_uuid(), 'c' || n || '@example.com', 'Ada', 'API'
         from generate_series(1, 3) as n",
    )
    .execute(&pool)
    .await
    .unwrap();
    let options = pool.connect_options();
    let url = database_url(&options);
    let file = std::env::temp_dir().join(format!("roster-export-{}.csv", std::process::id()));
    let output = roster()
        .args(["export", file.to_str().unwrap()])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(": 3 contacts exported"),
        "{output:?}"
    );
    let csv = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("email,firstName,"), "{csv}");

    let output = roster()
        .args(["export", "--list", "gone", file.to_str().unwrap()])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no mailing list"),
        "{output:?}"
    );
    assert!(!file.exists(), "nothing written for a refused export");
}
