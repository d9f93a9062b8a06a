//! One send step, at most one email per (run, step). After the eligibility check, one
//! statement claims the send: it writes the delivery row as `sending`, but only while
//! the run is active at this step and no earlier attempt is `sending`, `sent`,
//! `failed` or `unknown`. Only the claimer talks to SMTP, without holding a connection
//! or lock, and records the outcome after. If the process dies in between, the row
//! stays `sending`; the step's next run marks it `unknown` and does not send again.

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use minijinja::{Value, context};
use sqlx::PgConnection;
use uuid::Uuid;

use super::TRANSACTIONAL;
use super::definition::Workflow;
use super::engine::Engine;
use super::runs::{Run, advance_run, exit_run};
use crate::contacts::Contact;
use crate::email::message::{Envelope, build_message, new_message_id};
use crate::email::suppressions::{is_suppressed, suppress};
use crate::email::transport::SendError;
use crate::monitoring;

/// One send step of one run.
pub struct SendStep<'a> {
    pub run: &'a Run,
    pub workflow: &'a Workflow,
    pub step: i32,
    pub template: &'a str,
    /// The contact now, `None` once deleted (then the run's copy gives the address).
    pub contact: Option<&'a Contact>,
    pub context: Value,
    pub due: DateTime<Utc>,
    /// The step job's last attempt: a transient failure now ends the run.
    pub last_attempt: bool,
}

pub async fn send(engine: &Engine, send: SendStep<'_>) -> anyhow::Result<()> {
    let pool = &engine.pool;
    let SendStep {
        run,
        workflow,
        step,
        template,
        contact,
        context,
        due,
        last_attempt,
    } = send;
    let steps = workflow.steps.len();
    // A transactional send through the API goes to the address it was asked for; a
    // workflow's email to the contact's address now, or the one it had.
    let copied = run.contact["email"].as_str().map(str::to_owned);
    let recipient = match contact {
        Some(contact) if run.workflow != TRANSACTIONAL => Some(contact.email.clone()),
        _ => copied,
    }
    .unwrap_or_default();
    let mut conn = pool.acquire().await?;
    if let Some(reason) = ineligible(&mut conn, workflow, contact, &recipient).await? {
        if reason == SUPPRESSED {
            metrics::counter!(monitoring::EMAILS, "outcome" => "suppressed").increment(1);
            // Listed with the deliveries, so a skipped send is visible where sends are.
            sqlx::query!(
                "insert into email_deliveries (id, run_id, step, template, recipient, message_id, transactional, state, smtp_response)
                 values ($1, $2, $3, $4, $5, '', $6, 'suppressed', $7)
                 on conflict (run_id, step) do nothing",
                Uuid::now_v7(),
                run.id,
                step,
                template,
                recipient,
                workflow.transactional,
                reason,
            )
            .execute(&mut *conn)
            .await?;
        }
        exit_run(&mut conn, run.id, step, reason).await?;
        return Ok(());
    }
    let message = match build(
        engine,
        workflow,
        template,
        contact,
        &run.contact,
        &recipient,
        context,
    ) {
        Ok(message) => message,
        Err(error) => {
            // Bad data (an address that does not parse, a template that fails on this
            // contact) would fail the same way on every retry. Logged as an error: an
            // email someone expected is not sent.
            tracing::error!(
                run = %run.id, step, template, recipient = %mask_addresses(&recipient),
                error = %mask_addresses(&format!("{error:#}")),
                "the email could not be built; the run exits"
            );
            exit_run(
                &mut conn,
                run.id,
                step,
                &format!("the email could not be built: {error:#}"),
            )
            .await?;
            return Ok(());
        }
    };
    let message_id = message
        .headers()
        .get_raw("Message-ID")
        .unwrap_or_default()
        .to_owned();
    if !claim_send(
        &mut conn,
        run.id,
        step,
        template,
        &recipient,
        &message_id,
        workflow.transactional,
    )
    .await?
    {
        return settle_earlier_attempt(&mut conn, run.id, step, steps, due).await;
    }
    drop(conn); // no connection held while SMTP talks

    let outcome = engine.mailer.send(message).await;
    tracing::info!(
        run = %run.id, step, template, recipient = %mask_addresses(&recipient),
        outcome = %outcome.as_ref().map_or_else(|e| mask_addresses(&e.to_string()), |_| "sent".into()),
        "email handed to SMTP"
    );
    let mut tx = pool.begin().await?;
    // Only the claim must be on disk before SMTP: if this outcome is lost in a crash,
    // the row is still `sending`, and the retry marks it `unknown` and moves on.
    sqlx::query!("set local synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    let counted = match &outcome {
        Ok(_) => "sent",
        Err(SendError::Transient(_)) if !last_attempt => "retrying",
        Err(_) => "failed",
    };
    metrics::counter!(monitoring::EMAILS, "outcome" => counted).increment(1);
    if outcome.is_ok() {
        record_event_to_email(run, workflow, template);
    }
    let result = match &outcome {
        Ok(answer) => {
            record(&mut tx, run.id, step, "sent", answer).await?;
            advance_run(&mut tx, run.id, step, steps, due).await?;
            Ok(())
        }
        Err(SendError::Transient(answer)) if last_attempt => {
            record(&mut tx, run.id, step, "failed", answer).await?;
            exit_run(
                &mut tx,
                run.id,
                step,
                "SMTP kept failing; the last attempt gave up",
            )
            .await?;
            Ok(())
        }
        Err(SendError::Transient(answer)) => {
            record(&mut tx, run.id, step, "retrying", answer).await?;
            Err(anyhow::anyhow!("SMTP: {}", mask_addresses(answer)))
        }
        Err(SendError::Permanent(answer)) => {
            record(&mut tx, run.id, step, "failed", answer).await?;
            suppress(&mut tx, &recipient, answer).await?;
            exit_run(
                &mut tx,
                run.id,
                step,
                &format!("the address refused the email: {}", mask_addresses(answer)),
            )
            .await?;
            Ok(())
        }
    };
    tx.commit().await?;
    result
}

/// How long after the Clerk event that started the run SMTP accepted this email (the
/// envelope `timestamp`; API events have none and are not measured).
fn record_event_to_email(run: &Run, workflow: &Workflow, template: &str) {
    let Some(at) = run.event["timestamp"]
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
    else {
        return;
    };
    let seconds = (chrono::Utc::now() - at).num_milliseconds() as f64 / 1000.0;
    let labels = [
        ("workflow", workflow.name.clone()),
        ("template", template.to_owned()),
    ];
    metrics::histogram!(monitoring::EVENT_TO_EMAIL_SECONDS, &labels).record(seconds.max(0.0));
}

/// Renders the template and builds the message, with an unsubscribe link for
/// marketing email.
fn build(
    engine: &Engine,
    workflow: &Workflow,
    template: &str,
    contact: Option<&Contact>,
    copy: &serde_json::Value,
    recipient: &str,
    context: Value,
) -> anyhow::Result<lettre::Message> {
    let from = engine
        .from
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("MAIL_FROM is not set"))?;
    let unsubscribe_url = match (workflow.transactional, contact, &engine.unsubscribe) {
        (true, _, _) => None,
        (false, Some(contact), Some(key)) => Some(
            engine
                .public_url
                .join(&format!("unsubscribe/{}", key.token(contact.id)))?
                .to_string(),
        ),
        (false, _, _) => anyhow::bail!(
            "marketing email needs ROSTER_UNSUBSCRIBE_SECRET for its unsubscribe link"
        ),
    };
    let context = context! { unsubscribe_url => unsubscribe_url.clone(), ..context };
    let rendered = engine.templates.render(template, &context)?;
    let message_id = new_message_id(from);
    let to = Mailbox::new(display_name(contact, copy), recipient.parse()?);
    let envelope = Envelope {
        from,
        to,
        message_id: &message_id,
        unsubscribe_url: unsubscribe_url.as_deref(),
    };
    Ok(build_message(&envelope, &rendered)?)
}

/// Writes the delivery row as `sending` if this attempt may send: the run is active at
/// this step, and there is no row yet or only a `retrying` one. One statement, so two
/// copies of the step (a lease taken over while the first still runs) cannot both win.
pub async fn claim_send(
    conn: &mut PgConnection,
    run: Uuid,
    step: i32,
    template: &str,
    recipient: &str,
    message_id: &str,
    transactional: bool,
) -> sqlx::Result<bool> {
    let claimed = sqlx::query_scalar!(
        "insert into email_deliveries (id, run_id, step, template, recipient, message_id, transactional, attempts)
         select $1, $2, $3, $4, $5, $6, $7, 1
         where exists (select 1 from workflow_runs where id = $2 and state = 'active' and current_step = $3)
         on conflict (run_id, step) do update set
             state = 'sending', attempts = email_deliveries.attempts + 1, message_id = excluded.message_id
         where email_deliveries.state = 'retrying'
         returning id",
        Uuid::now_v7(),
        run,
        step,
        template,
        recipient,
        message_id,
        transactional,
    )
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

/// Another attempt got here first (or died while sending): move on accordingly.
async fn settle_earlier_attempt(
    conn: &mut PgConnection,
    run: Uuid,
    step: i32,
    steps: usize,
    due: DateTime<Utc>,
) -> anyhow::Result<()> {
    let state = sqlx::query_scalar!(
        "select state from email_deliveries where run_id = $1 and step = $2",
        run,
        step
    )
    .fetch_optional(&mut *conn)
    .await?;
    match state.as_deref() {
        // The crash window: SMTP may or may not have taken it. Never again.
        Some("sending") => {
            sqlx::query!(
                "update email_deliveries set state = 'unknown',
                     smtp_response = 'the worker stopped while sending; not sent again'
                 where run_id = $1 and step = $2 and state = 'sending'",
                run,
                step
            )
            .execute(&mut *conn)
            .await?;
            advance_run(conn, run, step, steps, due).await?;
        }
        Some("sent" | "unknown") => advance_run(conn, run, step, steps, due).await?,
        Some("failed") => exit_run(conn, run, step, "the address refused the email").await?,
        // No row: the run is no longer active at this step.
        _ => {}
    }
    Ok(())
}

const SUPPRESSED: &str = "the address is suppressed after a hard bounce";

/// The one eligibility check before every send; `Some(reason)` ends the run.
async fn ineligible(
    conn: &mut PgConnection,
    workflow: &Workflow,
    contact: Option<&Contact>,
    recipient: &str,
) -> sqlx::Result<Option<&'static str>> {
    if !workflow.transactional {
        match contact {
            None => return Ok(Some("the contact was deleted")),
            Some(contact) if !contact.subscribed => return Ok(Some("the contact unsubscribed")),
            Some(_) => {}
        }
    }
    if recipient.is_empty() {
        return Ok(Some("the contact has no email address"));
    }
    let suppressed = is_suppressed(conn, recipient).await?;
    Ok(suppressed.then_some(SUPPRESSED))
}

/// Records SMTP's answer on the row this attempt claimed; a row another attempt has
/// since settled (`unknown`) only moves on to `sent`.
async fn record(
    conn: &mut PgConnection,
    run: Uuid,
    step: i32,
    state: &str,
    answer: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update email_deliveries set state = $3, smtp_response = $4,
             sent_at = case when $3 = 'sent' then now() end
         where run_id = $1 and step = $2
           and (state = 'sending' or (state = 'unknown' and $3 = 'sent'))",
        run,
        step,
        state,
        answer,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// "First Last" for the To header, from the contact or the run's copy of it.
fn display_name(contact: Option<&Contact>, copy: &serde_json::Value) -> Option<String> {
    let (first, last) = match contact {
        Some(c) => (c.first_name.clone(), c.last_name.clone()),
        None => (
            copy["firstName"].as_str().map(str::to_owned),
            copy["lastName"].as_str().map(str::to_owned),
        ),
    };
    let name = [first, last]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    (!name.trim().is_empty()).then_some(name)
}

/// Masks every email address in `text` (`a***@example.com`): SMTP answers often quote
/// the recipient, and logs must not.
pub fn mask_addresses(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace() || "<>()[],;:\"'".contains(c))
        .map(|word| {
            let end =
                word.trim_end_matches(|c: char| c.is_whitespace() || "<>()[],;:\"'".contains(c));
            match end.split_once('@') {
                Some((local, domain)) if !local.is_empty() && domain.contains('.') => {
                    let first: String = local.chars().take(1).collect();
                    format!("{first}***@{domain}{}", &word[end.len()..])
                }
                _ => word.to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::mask_addresses;

    #[test]
    fn addresses_are_masked_wherever_they_are_quoted() {
        assert_eq!(
            mask_addresses("550 5.1.1 <bob@example.com>: Recipient address rejected"),
            "550 5.1.1 <b***@example.com>: Recipient address rejected"
        );
        assert_eq!(mask_addresses("ada@example.com"), "a***@example.com");
        assert_eq!(mask_addresses("451 try again"), "451 try again");
    }
}
