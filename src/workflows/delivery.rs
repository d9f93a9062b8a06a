//! One send step, at most one email per (run, step). First its slot in the send budget
//! (when `[sending] rate` is set); then the eligibility check; then one statement
//! claims the send: it writes the delivery row as `sending`, but only while the run is
//! active at this step and no earlier attempt is `sending`, `sent`, `failed`, `unknown`
//! or `suppressed`. Only the claimer talks to SMTP, without holding a connection or
//! lock, and records the outcome after. If the process dies in between, the row stays
//! `sending`; the step's next run marks it `unknown` and does not send again.

use chrono::{DateTime, Utc};
use minijinja::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::TRANSACTIONAL;
use super::definition::Workflow;
use super::outbound::{Outbound, Recipient};
use super::runs::{Run, advance_run, exit_run};
use super::state::DeliveryState;
use crate::contacts::Contact;
use crate::email::mask::mask_addresses;
use crate::email::suppressions::{is_suppressed, suppress};
use crate::email::transport::{SendError, queued_id};
use crate::monitoring;
use crate::webhooks::Endpoints;
use crate::webhooks::news::{email_news, sent_event};
use lettre::message::header::Subject;

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
    /// A campaign's send, behind all other email in the send budget.
    pub bulk: bool,
    /// The endpoints told of the send (`loop.email.sent`, ...).
    pub webhooks: &'a Endpoints,
}

/// Sends the step's email at most once: checks eligibility, claims the send, hands the
/// message to SMTP without holding a connection, and records the outcome.
#[tracing::instrument(name = "send", skip_all, fields(
    run = %send.run.id, step = send.step, template = send.template,
    trigger_key = send.run.trigger_key.as_deref().unwrap_or_default()
))]
pub async fn send(pool: &PgPool, outbound: &Outbound, send: SendStep<'_>) -> anyhow::Result<()> {
    let SendStep {
        run,
        workflow,
        step,
        template,
        contact,
        ..
    } = &send;
    let (run, step) = (*run, *step);
    // A transactional send through the API goes to the address it was asked for; a
    // workflow's email to the contact's address now, or the one it had.
    let copied = run.contact["email"].as_str().map(str::to_owned);
    let recipient = match contact {
        Some(contact) if run.workflow != TRANSACTIONAL => Some(contact.email.clone()),
        _ => copied,
    }
    .unwrap_or_default();
    // The slot first, so that eligibility is checked right before the send.
    if let Some(budget) = &outbound.budget {
        budget.wait_for_slot(pool, send.bulk).await?;
    }
    let mut conn = pool.acquire().await?;
    if skip_if_ineligible(&mut conn, &send, &recipient).await? {
        return Ok(());
    }
    let to = Recipient {
        contact: *contact,
        contact_snapshot: &run.contact,
        address: &recipient,
    };
    // A campaign's runs carry its own choice.
    let track = workflow.tracked() && run.event["track"] != false;
    let message = match outbound.build(
        template,
        workflow.transactional,
        &to,
        send.context.clone(),
        (run.id, step),
        track,
    ) {
        Ok(message) => message,
        Err(error) => {
            // Bad data (an address that does not parse, a template that fails on this
            // contact) would fail the same way on every retry. Logged as an error: an
            // email someone expected is not sent.
            tracing::error!(
                recipient = %mask_addresses(&recipient),
                error = %mask_addresses(&format!("{error:#}")),
                "the email could not be built; the run exits"
            );
            let reason = format!("the email could not be built: {error:#}");
            exit_run(&mut conn, run.id, step, &reason).await?;
            return Ok(());
        }
    };
    let subject = message.headers().get::<Subject>();
    let delivery = NewDelivery {
        run: run.id,
        step,
        template,
        recipient: &recipient,
        message_id: message.headers().get_raw("Message-ID").unwrap_or_default(),
        transactional: workflow.transactional,
        subject: subject.as_ref().map(AsRef::as_ref),
    };
    if !claim_send(&mut conn, &delivery).await? {
        let steps = workflow.steps.len();
        return settle_earlier_attempt(&mut conn, run.id, step, steps, send.due).await;
    }
    drop(conn); // no connection held while SMTP talks

    let outcome = outbound.mailer.send(message).await;
    tracing::info!(
        recipient = %mask_addresses(&recipient),
        outcome = %outcome.as_ref().map_or_else(|e| mask_addresses(&e.to_string()), |_| "sent".into()),
        "email handed to SMTP"
    );
    record_outcome(pool, &send, &recipient, outcome).await
}

/// Ends the run when the send is not allowed (listing a suppressed address with the
/// deliveries, so a skipped send is visible where sends are); `true` when it did.
async fn skip_if_ineligible(
    conn: &mut PgConnection,
    send: &SendStep<'_>,
    recipient: &str,
) -> sqlx::Result<bool> {
    let Some(reason) = ineligible(conn, send, recipient).await? else {
        return Ok(false);
    };
    if reason == SUPPRESSED {
        metrics::counter!(monitoring::EMAILS, "outcome" => "suppressed").increment(1);
        sqlx::query!(
            "insert into email_deliveries (id, run_id, step, template, recipient, message_id, transactional, state, smtp_response)
             values ($1, $2, $3, $4, $5, '', $6, $7, $8)
             on conflict (run_id, step) do nothing",
            Uuid::now_v7(),
            send.run.id,
            send.step,
            send.template,
            recipient,
            send.workflow.transactional,
            DeliveryState::Suppressed.as_str(),
            reason,
        )
        .execute(&mut *conn)
        .await?;
    }
    exit_run(conn, send.run.id, send.step, reason).await?;
    Ok(true)
}

/// Writes SMTP's answer and moves the run on: sent advances it; a refusal suppresses
/// the address and ends it; a transient failure is retried (the error is the job's),
/// unless this was the last attempt.
async fn record_outcome(
    pool: &PgPool,
    send: &SendStep<'_>,
    recipient: &str,
    outcome: Result<String, SendError>,
) -> anyhow::Result<()> {
    let (run, step, steps) = (send.run, send.step, send.workflow.steps.len());
    let mut tx = pool.begin().await?;
    // Only the claim must be on disk before SMTP: if this outcome is lost in a crash,
    // the row is still `sending`, and the retry marks it `unknown` and moves on.
    sqlx::query!("set local synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    let state = match &outcome {
        Ok(_) => DeliveryState::Sent,
        Err(SendError::Transient(_)) if !send.last_attempt => DeliveryState::Retrying,
        Err(_) => DeliveryState::Failed,
    };
    metrics::counter!(monitoring::EMAILS, "outcome" => state.as_str()).increment(1);
    let answer = match &outcome {
        Ok(answer) | Err(SendError::Transient(answer) | SendError::Permanent(answer)) => answer,
    };
    let delivery = record(&mut tx, run.id, step, state, answer).await?;
    let result = match &outcome {
        Ok(_) => {
            if let Some(delivery) = delivery {
                let event = sent_event(&send.workflow.name);
                email_news(&mut tx, send.webhooks, event, delivery).await?;
            }
            record_event_to_email(run, send.workflow, send.template);
            advance_run(&mut tx, run.id, step, steps, send.due).await?;
            Ok(())
        }
        Err(SendError::Transient(_)) if send.last_attempt => {
            let reason = "SMTP kept failing; the last attempt gave up";
            exit_run(&mut tx, run.id, step, reason).await?;
            Ok(())
        }
        Err(SendError::Transient(answer)) => {
            Err(anyhow::anyhow!("SMTP: {}", mask_addresses(answer)))
        }
        Err(SendError::Permanent(answer)) => {
            suppress(&mut tx, recipient, answer).await?;
            let reason = format!("the address refused the email: {}", mask_addresses(answer));
            exit_run(&mut tx, run.id, step, &reason).await?;
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

/// A delivery row about to be claimed.
pub struct NewDelivery<'a> {
    pub run: Uuid,
    pub step: i32,
    pub template: &'a str,
    pub recipient: &'a str,
    pub message_id: &'a str,
    pub transactional: bool,
    pub subject: Option<&'a str>,
}

/// Writes the delivery row as `sending` if this attempt may send: the run is active at
/// this step, and there is no row yet or only a `retrying` one. One statement, so two
/// copies of the step (a lease taken over while the first still runs) cannot both win.
/// The run is read `for share`: a concurrent end of the run (a cancelled campaign, an
/// unsubscribe's exit) is waited for and seen, so no send slips past it.
pub async fn claim_send(conn: &mut PgConnection, delivery: &NewDelivery<'_>) -> sqlx::Result<bool> {
    let claimed = sqlx::query_scalar!(
        "insert into email_deliveries (id, run_id, step, template, recipient, message_id, transactional, attempts, subject)
         select $1, $2, $3, $4, $5, $6, $7, 1, $8
         where exists (select 1 from workflow_runs where id = $2 and state = 'active' and current_step = $3 for share)
         on conflict (run_id, step) do update set
             state = 'sending', attempts = email_deliveries.attempts + 1, message_id = excluded.message_id,
             subject = excluded.subject
         where email_deliveries.state = 'retrying'
         returning id",
        Uuid::now_v7(),
        delivery.run,
        delivery.step,
        delivery.template,
        delivery.recipient,
        delivery.message_id,
        delivery.transactional,
        delivery.subject,
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
        r#"select state as "state: DeliveryState" from email_deliveries where run_id = $1 and step = $2"#,
        run,
        step
    )
    .fetch_optional(&mut *conn)
    .await?;
    match state {
        // The crash window: SMTP may or may not have taken it. Never again.
        Some(DeliveryState::Sending) => {
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
        Some(DeliveryState::Sent | DeliveryState::Unknown) => {
            advance_run(conn, run, step, steps, due).await?
        }
        Some(DeliveryState::Failed) => {
            exit_run(conn, run, step, "the address refused the email").await?
        }
        // No row: the run is no longer active at this step; `retrying` or `suppressed`
        // rows do not block a claim or were settled with their run.
        None | Some(DeliveryState::Retrying | DeliveryState::Suppressed) => {}
    }
    Ok(())
}

const SUPPRESSED: &str = "the address is suppressed after a hard bounce";

/// The one eligibility check before every send; `Some(reason)` ends the run.
async fn ineligible(
    conn: &mut PgConnection,
    send: &SendStep<'_>,
    recipient: &str,
) -> sqlx::Result<Option<&'static str>> {
    if !send.workflow.transactional {
        match send.contact {
            None => return Ok(Some("the contact was deleted")),
            Some(contact) if !contact.subscribed => return Ok(Some("the contact unsubscribed")),
            Some(contact) if contact.clerk_banned => {
                return Ok(Some("the user is banned in Clerk"));
            }
            Some(contact) if contact.is_locked(Utc::now()) => {
                return Ok(Some("the user is locked in Clerk"));
            }
            Some(contact) => {
                // A campaign to a list: the contact may have left it since it started.
                if let Some(list) = send.run.event["mailingListId"].as_str()
                    && contact.mailing_lists[list] != true
                {
                    return Ok(Some("the contact left the mailing list"));
                }
            }
        }
    }
    if recipient.is_empty() {
        return Ok(Some("the contact has no email address"));
    }
    let suppressed = is_suppressed(conn, recipient).await?;
    Ok(suppressed.then_some(SUPPRESSED))
}

/// Records SMTP's answer (and the relay's message id in it) on the row this attempt
/// claimed; a row another attempt has since settled (`unknown`) only moves on to `sent`.
/// Returns the row's ID when it was written.
async fn record(
    conn: &mut PgConnection,
    run: Uuid,
    step: i32,
    state: DeliveryState,
    answer: &str,
) -> sqlx::Result<Option<Uuid>> {
    let provider_message_id = (state == DeliveryState::Sent)
        .then(|| queued_id(answer))
        .flatten();
    let state = state.as_str();
    sqlx::query_scalar!(
        "update email_deliveries set state = $3, smtp_response = $4, provider_message_id = $5,
             sent_at = case when $3 = 'sent' then now() end
         where run_id = $1 and step = $2
           and (state = 'sending' or (state = 'unknown' and $3 = 'sent'))
         returning id",
        run,
        step,
        state,
        answer,
        provider_message_id,
    )
    .fetch_optional(conn)
    .await
}
