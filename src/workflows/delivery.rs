//! Send steps, at most one email per (run, step), a claim batch at a time. First each
//! send's slot in the send budget (when `[sending] rate` is set, and then each send is
//! its own batch, so the budget spaces them); then the eligibility check, with the
//! batch's suppressions read in one query; then one statement claims all the batch's
//! sends, durably: it writes each delivery row as `sending`, but only while its run is
//! active at this step and no earlier attempt is `sending`, `sent`, `failed`, `unknown`
//! or `suppressed`. Only the claimer talks to SMTP, without holding a connection or
//! lock; the outcomes are written after, in one transaction that need not wait for the
//! flush. If the process dies in between, the row stays `sending`; the step's next run
//! marks it `unknown` and does not send again.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use minijinja::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::TRANSACTIONAL;
use super::definition::Workflow;
use super::outbound::{Outbound, Recipient};
use super::runs::{Advance, Run, advance_run, advance_runs, exit_run};
use super::state::DeliveryState;
use crate::contacts::Contact;
use crate::email::mask::mask_addresses;
use crate::email::suppressions::{suppress, suppressed_among};
use crate::email::transport::{SendError, queued_id};
use crate::monitoring;
use crate::webhooks::Endpoints;
use crate::webhooks::news::{email_news, sent_event};
use lettre::message::header::Subject;

/// One send step of one run.
pub struct SendStep {
    pub run: Run,
    pub workflow: Workflow,
    pub step: i32,
    pub template: String,
    /// The contact now, `None` once deleted (then the run's copy gives the address).
    pub contact: Option<Contact>,
    pub context: Value,
    pub due: DateTime<Utc>,
    /// The step job's last attempt: a transient failure now ends the run.
    pub last_attempt: bool,
    /// A campaign's send, behind all other email in the send budget.
    pub bulk: bool,
}

impl SendStep {
    /// A transactional send through the API goes to the address it was asked for; a
    /// workflow's email to the contact's address now, or the one it had.
    fn recipient(&self) -> String {
        let copied = self.run.contact["email"].as_str().map(str::to_owned);
        match &self.contact {
            Some(contact) if self.run.workflow != TRANSACTIONAL => Some(contact.email.clone()),
            _ => copied,
        }
        .unwrap_or_default()
    }
}

/// Sends each step's email at most once; one result per send, in their order (an
/// `Err` is its job's failed or deferred attempt). `webhooks` are told of the sends.
pub async fn send_all(
    pool: &PgPool,
    outbound: &Outbound,
    webhooks: &Endpoints,
    sends: Vec<SendStep>,
) -> Vec<anyhow::Result<()>> {
    let Some(budget) = &outbound.budget else {
        return send_batch(pool, outbound, webhooks, sends).await;
    };
    // The slot first, so that eligibility is checked right before the send.
    join_all(sends.into_iter().map(|send| async move {
        budget.wait_for_slot(pool, send.bulk).await?;
        let mut outcome = send_batch(pool, outbound, webhooks, vec![send]).await;
        outcome.pop().unwrap_or(Ok(()))
    }))
    .await
}

/// A send that passed the checks and has its message.
struct Ready {
    /// Its place in the batch.
    index: usize,
    recipient: String,
    message: lettre::Message,
}

/// Checks, claims, sends and records a batch of sends.
async fn send_batch(
    pool: &PgPool,
    outbound: &Outbound,
    webhooks: &Endpoints,
    sends: Vec<SendStep>,
) -> Vec<anyhow::Result<()>> {
    let mut results: Vec<Option<anyhow::Result<()>>> = sends.iter().map(|_| None).collect();
    let recipients: Vec<String> = sends.iter().map(SendStep::recipient).collect();
    let ready = match prepare(pool, outbound, &sends, recipients, &mut results).await {
        Ok(ready) => ready,
        Err(error) => return failed_all(&sends, &error),
    };
    let claimed = match claim_ready(pool, &sends, ready, &mut results).await {
        Ok(claimed) => claimed,
        Err(error) => return failed_all(&sends, &error),
    };
    // No connection held while SMTP talks; the pool's connections serve them all.
    let sends = &sends;
    let outcomes = join_all(claimed.into_iter().map(|ready| async move {
        let outcome = outbound.mailer.send(ready.message).await;
        let send = &sends[ready.index];
        tracing::info!(
            run = %send.run.id, step = send.step, template = send.template,
            trigger_key = send.run.trigger_key.as_deref().unwrap_or_default(),
            recipient = %mask_addresses(&ready.recipient),
            outcome = %outcome.as_ref().map_or_else(|e| mask_addresses(&e.to_string()), |_| "sent".into()),
            "email handed to SMTP"
        );
        (ready.index, ready.recipient, outcome)
    }))
    .await;
    if let Err(error) = record_outcomes(pool, webhooks, sends, outcomes, &mut results).await {
        return failed_all(sends, &error);
    }
    results
        .into_iter()
        .map(|result| result.unwrap_or(Ok(())))
        .collect()
}

/// The same failure for every send of the batch: none of them got further.
fn failed_all(sends: &[SendStep], error: &sqlx::Error) -> Vec<anyhow::Result<()>> {
    sends
        .iter()
        .map(|_| Err(anyhow::anyhow!("{error}")))
        .collect()
}

/// Ends the runs whose send is not allowed or whose email cannot be built; the rest
/// are ready to claim.
async fn prepare(
    pool: &PgPool,
    outbound: &Outbound,
    sends: &[SendStep],
    recipients: Vec<String>,
    results: &mut [Option<anyhow::Result<()>>],
) -> sqlx::Result<Vec<Ready>> {
    let suppressed = suppressed_among(pool, &recipients).await?;
    let mut ready = Vec::with_capacity(sends.len());
    for (index, (send, recipient)) in sends.iter().zip(recipients).enumerate() {
        let is_suppressed = suppressed.contains(&recipient);
        if let Some(reason) = ineligible(send, &recipient, is_suppressed) {
            skip(&mut *pool.acquire().await?, send, &recipient, reason).await?;
            results[index] = Some(Ok(()));
            continue;
        }
        match build(outbound, send, &recipient) {
            Ok(message) => ready.push(Ready {
                index,
                recipient,
                message,
            }),
            Err(error) => {
                // Bad data (an address that does not parse, a template that fails on
                // this contact) would fail the same way on every retry. Logged as an
                // error: an email someone expected is not sent.
                tracing::error!(
                    run = %send.run.id, step = send.step, template = send.template,
                    recipient = %mask_addresses(&recipient),
                    error = %mask_addresses(&format!("{error:#}")),
                    "the email could not be built; the run exits"
                );
                let reason = format!("the email could not be built: {error:#}");
                exit_run(&mut *pool.acquire().await?, send.run.id, send.step, &reason).await?;
                results[index] = Some(Ok(()));
            }
        }
    }
    Ok(ready)
}

/// The step's email to `recipient`.
fn build(outbound: &Outbound, send: &SendStep, recipient: &str) -> anyhow::Result<lettre::Message> {
    let to = Recipient {
        contact: send.contact.as_ref(),
        contact_snapshot: &send.run.contact,
        address: recipient,
    };
    // A campaign's runs carry its own choice.
    let track = send.workflow.tracked() && send.run.event["track"] != false;
    outbound.build(
        &send.template,
        send.workflow.transactional,
        &to,
        send.context.clone(),
        (send.run.id, send.step),
        track,
    )
}

/// Claims the ready sends in one statement; the ones another attempt got to first are
/// settled as it left them. Returns the claimed ones.
async fn claim_ready(
    pool: &PgPool,
    sends: &[SendStep],
    ready: Vec<Ready>,
    results: &mut [Option<anyhow::Result<()>>],
) -> sqlx::Result<Vec<Ready>> {
    if ready.is_empty() {
        return Ok(ready);
    }
    let subjects: Vec<Option<String>> = ready
        .iter()
        .map(|r| {
            r.message
                .headers()
                .get::<Subject>()
                .map(|s| s.as_ref().to_owned())
        })
        .collect();
    let deliveries: Vec<NewDelivery<'_>> = ready
        .iter()
        .zip(&subjects)
        .map(|(r, subject)| {
            let send = &sends[r.index];
            NewDelivery {
                run: send.run.id,
                step: send.step,
                template: &send.template,
                recipient: &r.recipient,
                message_id: r
                    .message
                    .headers()
                    .get_raw("Message-ID")
                    .unwrap_or_default(),
                transactional: send.workflow.transactional,
                subject: subject.as_deref(),
            }
        })
        .collect();
    let mut conn = pool.acquire().await?;
    let won: HashSet<(Uuid, i32)> = claim_sends(&mut conn, &deliveries)
        .await?
        .into_iter()
        .collect();
    drop(deliveries);
    let mut claimed = Vec::with_capacity(ready.len());
    for r in ready {
        let send = &sends[r.index];
        if won.contains(&(send.run.id, send.step)) {
            claimed.push(r);
            continue;
        }
        // Its own failure only: the claimed sends are on disk as `sending` and must go.
        let steps = send.workflow.steps.len();
        let settled = settle_earlier_attempt(&mut conn, send.run.id, send.step, steps, send.due);
        results[r.index] = Some(settled.await.map_err(anyhow::Error::from));
    }
    Ok(claimed)
}

/// Ends the run of a send that is not allowed, listing a suppressed address with the
/// deliveries, so a skipped send is visible where sends are.
async fn skip(
    conn: &mut PgConnection,
    send: &SendStep,
    recipient: &str,
    reason: &str,
) -> sqlx::Result<()> {
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
    exit_run(conn, send.run.id, send.step, reason).await
}

/// Writes SMTP's answers and moves the runs on, in one transaction: sent advances the
/// run; a refusal suppresses the address and ends it; a transient failure is retried
/// (the error is the job's), unless this was the last attempt.
async fn record_outcomes(
    pool: &PgPool,
    webhooks: &Endpoints,
    sends: &[SendStep],
    outcomes: Vec<(usize, String, Result<String, SendError>)>,
    results: &mut [Option<anyhow::Result<()>>],
) -> sqlx::Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let answers: Vec<Answer<'_>> = outcomes
        .iter()
        .map(|(index, _, outcome)| {
            let send = &sends[*index];
            let state = match outcome {
                Ok(_) => DeliveryState::Sent,
                Err(SendError::Transient(_)) if !send.last_attempt => DeliveryState::Retrying,
                Err(_) => DeliveryState::Failed,
            };
            metrics::counter!(monitoring::EMAILS, "outcome" => state.as_str()).increment(1);
            let (Ok(answer) | Err(SendError::Transient(answer) | SendError::Permanent(answer))) =
                outcome;
            Answer {
                run: send.run.id,
                step: send.step,
                state,
                answer,
            }
        })
        .collect();
    let recorded = record(&mut tx, &answers).await?;
    let mut advances = Vec::new();
    for (index, recipient, outcome) in &outcomes {
        let send = &sends[*index];
        let (run, step) = (&send.run, send.step);
        results[*index] = Some(match outcome {
            Ok(_) => {
                if let Some(delivery) = recorded.iter().find(|r| r.0 == run.id).map(|r| r.1) {
                    let event = sent_event(&send.workflow.name);
                    email_news(&mut tx, webhooks, event, delivery).await?;
                }
                record_event_to_email(run, &send.workflow, &send.template);
                advances.push(Advance {
                    run: run.id,
                    from: step,
                    steps: send.workflow.steps.len(),
                    run_at: send.due,
                });
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
        });
    }
    advance_runs(&mut tx, &advances).await?;
    tx.commit().await
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

/// Writes each delivery row as `sending` if its attempt may send: its run is active at
/// its step, and there is no row yet or only a `retrying` one. One statement and one
/// commit for the batch, so two copies of a step (a lease taken over while the first
/// still runs) cannot both win. Each run is read `for share`: a concurrent end of the
/// run (a cancelled campaign, an unsubscribe's exit) is waited for and seen, so no
/// send slips past it. Returns the (run, step) of each claimed send.
pub async fn claim_sends(
    conn: &mut PgConnection,
    deliveries: &[NewDelivery<'_>],
) -> sqlx::Result<Vec<(Uuid, i32)>> {
    // One row per (run, step): a second would fail the statement. In run order, so
    // concurrent batches take their runs' locks in one order.
    let mut deliveries: Vec<&NewDelivery<'_>> = deliveries.iter().collect();
    deliveries.sort_by_key(|d| (d.run, d.step));
    deliveries.dedup_by_key(|d| (d.run, d.step));
    let ids: Vec<Uuid> = deliveries.iter().map(|_| Uuid::now_v7()).collect();
    let runs: Vec<Uuid> = deliveries.iter().map(|d| d.run).collect();
    let steps: Vec<i32> = deliveries.iter().map(|d| d.step).collect();
    let text = |f: fn(&NewDelivery<'_>) -> String| deliveries.iter().map(|d| f(d)).collect();
    let templates: Vec<String> = text(|d| d.template.to_owned());
    let recipients: Vec<String> = text(|d| d.recipient.to_owned());
    let message_ids: Vec<String> = text(|d| d.message_id.to_owned());
    let transactional: Vec<bool> = deliveries.iter().map(|d| d.transactional).collect();
    let subjects: Vec<Option<String>> = deliveries
        .iter()
        .map(|d| d.subject.map(str::to_owned))
        .collect();
    let claimed = sqlx::query!(
        r#"insert into email_deliveries (id, run_id, step, template, recipient, message_id, transactional, attempts, subject)
           select d.id, d.run_id, d.step, d.template, d.recipient, d.message_id, d.transactional, 1, d.subject
           from unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::text[])
               as d(id, run_id, step, template, recipient, message_id, transactional, subject)
           where exists (select 1 from workflow_runs r
                         where r.id = d.run_id and r.state = 'active' and r.current_step = d.step for share)
           order by d.run_id
           on conflict (run_id, step) do update set
               state = 'sending', attempts = email_deliveries.attempts + 1, message_id = excluded.message_id,
               subject = excluded.subject
           where email_deliveries.state = 'retrying'
           returning run_id, step"#,
        &ids,
        &runs,
        &steps,
        &templates,
        &recipients,
        &message_ids,
        &transactional,
        &subjects as &[Option<String>],
    )
    .fetch_all(conn)
    .await?;
    Ok(claimed
        .into_iter()
        .map(|row| (row.run_id, row.step))
        .collect())
}

/// Another attempt got here first (or died while sending): move on accordingly.
async fn settle_earlier_attempt(
    conn: &mut PgConnection,
    run: Uuid,
    step: i32,
    steps: usize,
    due: DateTime<Utc>,
) -> sqlx::Result<()> {
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

/// The one eligibility check before every send (`suppressed`: the address is, read
/// with the batch's); `Some(reason)` ends the run.
fn ineligible(send: &SendStep, recipient: &str, suppressed: bool) -> Option<&'static str> {
    if !send.workflow.transactional {
        match &send.contact {
            None => return Some("the contact was deleted"),
            Some(contact) if !contact.subscribed => return Some("the contact unsubscribed"),
            Some(contact) if contact.clerk_banned => return Some("the user is banned in Clerk"),
            Some(contact) if contact.is_locked(Utc::now()) => {
                return Some("the user is locked in Clerk");
            }
            Some(contact) => {
                // A campaign to a list: the contact may have left it since it started.
                if let Some(list) = send.run.event["mailingListId"].as_str()
                    && contact.mailing_lists[list] != true
                {
                    return Some("the contact left the mailing list");
                }
            }
        }
    }
    if recipient.is_empty() {
        return Some("the contact has no email address");
    }
    suppressed.then_some(SUPPRESSED)
}

/// SMTP's answer for one claimed send.
struct Answer<'a> {
    run: Uuid,
    step: i32,
    state: DeliveryState,
    answer: &'a str,
}

/// Records SMTP's answers (and the relay's message id in each) on the rows their
/// attempts claimed, in one statement; a row another attempt has since settled
/// (`unknown`) only moves on to `sent`. Returns the (run, delivery ID) of each row
/// written.
///
/// Its transaction commits without waiting for the flush: only the claims must be on
/// disk before SMTP. If these outcomes are lost in a crash, the rows are still
/// `sending`, and the retries mark them `unknown`.
async fn record(
    conn: &mut PgConnection,
    answers: &[Answer<'_>],
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    let runs: Vec<Uuid> = answers.iter().map(|a| a.run).collect();
    let steps: Vec<i32> = answers.iter().map(|a| a.step).collect();
    let states: Vec<String> = answers
        .iter()
        .map(|a| a.state.as_str().to_owned())
        .collect();
    let texts: Vec<String> = answers.iter().map(|a| a.answer.to_owned()).collect();
    let provider_ids: Vec<Option<String>> = answers
        .iter()
        .map(|a| {
            (a.state == DeliveryState::Sent)
                .then(|| queued_id(a.answer))
                .flatten()
                .map(str::to_owned)
        })
        .collect();
    let rows = sqlx::query!(
        "update email_deliveries d set state = a.state, smtp_response = a.answer,
             provider_message_id = a.provider_id,
             sent_at = case when a.state = 'sent' then now() end
         from unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[])
             as a(run_id, step, state, answer, provider_id)
         where d.run_id = a.run_id and d.step = a.step
           and (d.state = 'sending' or (d.state = 'unknown' and a.state = 'sent'))
           and (select set_config('synchronous_commit', 'off', true)) is not null
         returning d.run_id, d.id",
        &runs,
        &steps,
        &states,
        &texts,
        &provider_ids as &[Option<String>],
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|row| (row.run_id, row.id)).collect())
}
