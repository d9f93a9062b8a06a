//! One send step, exactly once per (run, step): the eligibility check, then the
//! delivery row is committed before the message goes to SMTP, and the outcome after.
//! If the process dies between the two, the row stays `sending`; the step's retry
//! finds it, marks it `unknown` and does not send again (at most once, never twice).

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use minijinja::{Value, context};
use sqlx::PgConnection;
use uuid::Uuid;

use super::definition::Workflow;
use super::engine::Engine;
use super::runs::{Run, advance_run, exit_run};
use crate::contacts::Contact;
use crate::email::message::{Envelope, build_message, new_message_id};
use crate::email::transport::SendError;

/// One send step of one run.
pub struct SendStep<'a> {
    pub run: &'a Run,
    pub workflow: &'a super::definition::Workflow,
    pub step: i32,
    pub template: &'a str,
    /// The contact now, `None` once deleted (then the run's copy gives the address).
    pub contact: Option<&'a Contact>,
    pub context: Value,
    pub due: DateTime<Utc>,
}

pub async fn send(
    engine: &Engine,
    conn: &mut PgConnection,
    send: SendStep<'_>,
) -> anyhow::Result<()> {
    let SendStep {
        run,
        workflow,
        step,
        template,
        contact,
        context,
        due,
    } = send;
    let steps = workflow.steps.len();
    let recipient = contact
        .map(|c| c.email.clone())
        .or_else(|| run.contact["email"].as_str().map(str::to_owned))
        .unwrap_or_default();
    if let Some(reason) = ineligible(conn, workflow, contact, &recipient).await? {
        exit_run(conn, run.id, reason).await?;
        return Ok(());
    }

    let previous = sqlx::query!(
        "select state, message_id from email_deliveries where run_id = $1 and step = $2",
        run.id,
        step
    )
    .fetch_optional(&mut *conn)
    .await?;
    let message_id = match previous {
        None => None,
        Some(previous) => match previous.state.as_str() {
            "retrying" => Some(previous.message_id),
            "sending" => {
                // The crash window: SMTP may or may not have taken it. Not again.
                sqlx::query!(
                    "update email_deliveries set state = 'unknown',
                         smtp_response = 'the worker stopped while sending; not sent again'
                     where run_id = $1 and step = $2",
                    run.id,
                    step
                )
                .execute(&mut *conn)
                .await?;
                advance_run(conn, run.id, step, steps, due).await?;
                return Ok(());
            }
            "failed" => {
                exit_run(conn, run.id, "the address refused the email").await?;
                return Ok(());
            }
            _ => {
                advance_run(conn, run.id, step, steps, due).await?;
                return Ok(());
            }
        },
    };

    let from = engine
        .from
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("MAIL_FROM is not set"))?;
    let unsubscribe_url = match (workflow.transactional, contact, &engine.unsubscribe) {
        (false, Some(contact), Some(key)) => Some(
            engine
                .public_url
                .join(&format!("unsubscribe/{}", key.token(contact.id)))?
                .to_string(),
        ),
        (false, _, _) => anyhow::bail!(
            "marketing email needs ROSTER_UNSUBSCRIBE_SECRET for its unsubscribe link"
        ),
        (true, _, _) => None,
    };
    let context = context! { unsubscribe_url => unsubscribe_url.clone(), ..context };
    let rendered = engine.templates.render(template, &context)?;
    let message_id = message_id.unwrap_or_else(|| new_message_id(from));
    let to = Mailbox::new(display_name(contact, &run.contact), recipient.parse()?);
    let message = build_message(
        &Envelope {
            from,
            to,
            message_id: &message_id,
            unsubscribe_url: unsubscribe_url.as_deref(),
        },
        &rendered,
    )?;

    // Recorded before SMTP sees it, and committed (this connection is not in a
    // transaction), so a crash from here on cannot lead to a second send.
    sqlx::query!(
        "insert into email_deliveries (id, run_id, step, template, recipient, message_id, transactional, attempts)
         values ($1, $2, $3, $4, $5, $6, $7, 1)
         on conflict (run_id, step) do update set state = 'sending', attempts = email_deliveries.attempts + 1",
        Uuid::now_v7(),
        run.id,
        step,
        template,
        recipient,
        message_id,
        workflow.transactional,
    )
    .execute(&mut *conn)
    .await?;

    let outcome = engine.mailer.send(message).await;
    // Only the row above must be on disk before SMTP. If this outcome is lost in a
    // crash, the row is still `sending`: the retry marks it `unknown` and moves on, so
    // the outcome commits without waiting for the WAL flush.
    tracing::info!(
        run = %run.id, step, template, recipient = %mask(&recipient),
        outcome = ?outcome.as_ref().map(|_| "sent"), "email handed to SMTP"
    );
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query!("set local synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    let result = match &outcome {
        Ok(answer) => {
            record(&mut tx, run.id, step, "sent", answer).await?;
            advance_run(&mut tx, run.id, step, steps, due).await?;
            Ok(())
        }
        Err(SendError::Transient(answer)) => {
            record(&mut tx, run.id, step, "retrying", answer).await?;
            Err(anyhow::anyhow!("SMTP: {answer}"))
        }
        Err(SendError::Permanent(answer)) => {
            record(&mut tx, run.id, step, "failed", answer).await?;
            sqlx::query!(
                "insert into suppressions (email, reason) values (lower($1), $2) on conflict (email) do nothing",
                recipient,
                answer,
            )
            .execute(&mut *tx)
            .await?;
            exit_run(
                &mut tx,
                run.id,
                &format!("the address refused the email: {answer}"),
            )
            .await?;
            Ok(())
        }
    };
    tx.commit().await?;
    result
}

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
    let suppressed = sqlx::query_scalar!(
        "select exists(select 1 from suppressions where email = lower($1)) as \"suppressed!\"",
        recipient
    )
    .fetch_one(conn)
    .await?;
    Ok(suppressed.then_some("the address is suppressed after a hard bounce"))
}

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
         where run_id = $1 and step = $2",
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

/// `a***@example.com`: enough to tell deliveries apart in a log, not enough to read.
fn mask(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}
