//! Workflow runs in the database: started with their first step's job in the
//! triggering transaction, moved on one step at a time, ended with a reason.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::definition::CAMPAIGN;
use super::state::RunState;
use super::{STEP_JOB, TRANSACTIONAL, Workflows};
use crate::config::workflows::EntryRule;
use crate::contacts::Contact;
use crate::contacts::lifecycle::{LifecycleEvent, Via, event_json};
use crate::contacts::write::{Change, Upserted};
use crate::input::InputError;
use crate::jobs::queue::{NewJob, enqueue_job};
use crate::page::{Page, PageQuery, page_of};
use crate::segments::filter::Filter;
use crate::segments::sql::push_filter;
use crate::webhooks::news::{ContactNews, contact_news, list_news};

/// Attempts a step job gets: SMTP outages of a few hours are retried through.
const STEP_ATTEMPTS: i32 = 10;

/// The event that triggers runs: its name, a key unique to this occurrence (the
/// `svix-id`), and its JSON as templates see it.
#[derive(Debug)]
pub struct TriggerEvent<'a> {
    pub name: &'a str,
    pub key: &'a str,
    pub data: &'a Value,
}

/// A run as the engine reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Run {
    pub id: Uuid,
    pub workflow: String,
    pub contact_id: Option<Uuid>,
    pub contact: Value,
    pub event: Value,
    pub state: RunState,
    pub current_step: i32,
    /// The workflow version it started on; none for runs older than versions.
    pub version: Option<String>,
    /// What started it: the `svix-id` of the Clerk delivery, the API event's key, or
    /// the transactional request's run; none for runs older than the key.
    pub trigger_key: Option<String>,
}

/// Starts the workflows `event` triggers for `contact`, in the caller's transaction.
/// A contact deleted by this very event (`user.deleted` in delete mode) still gets its
/// runs, linked to no contact row but carrying its copy.
/// A workflow with entry `once` starts once per contact; a redelivered event starts
/// nothing twice. Returns how many runs started.
pub async fn start_runs(
    conn: &mut PgConnection,
    workflows: &Workflows,
    event: &TriggerEvent<'_>,
    contact: &Contact,
    now: DateTime<Utc>,
) -> sqlx::Result<usize> {
    let mut started = 0;
    for workflow in workflows.triggered_by(event.name) {
        let entry_key = match workflow.entry {
            EntryRule::Once => contact.id.to_string(),
            EntryRule::EveryTime => format!("{}:{}", contact.id, event.key),
        };
        // The version is stored with its first run, in the same statement.
        let run_id = sqlx::query_scalar!(
            "with version as (
                 insert into workflow_versions (id, workflow, definition) values ($8, $2, $9)
                 on conflict (id) do nothing
             )
             insert into workflow_runs (id, workflow, entry_key, contact_id, contact, trigger_event, event, version, trigger_key)
             values ($1, $2, $3, (select id from contacts where id = $4), $5, $6, $7, $8, $10)
             on conflict (workflow, entry_key) do nothing
             returning id",
            Uuid::now_v7(),
            workflow.name,
            entry_key,
            contact.id,
            contact.step_json(),
            event.name,
            event.data,
            workflow.version,
            workflow.definition(),
            event.key,
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(run_id) = run_id {
            tracing::info!(run = %run_id, workflow = %workflow.name, trigger_key = event.key, "run started");
            enqueue_step(conn, run_id, 0, now).await?;
            started += 1;
        }
    }
    Ok(started)
}

/// Records, for each workflow `event` triggers, that it started no run and why (the
/// event's user has no contact): an exited run with that reason and no step, which the
/// run log shows. Keyed by the event, so a redelivery records nothing twice, and never
/// in the way of a later run for the contact.
pub async fn record_unstarted_runs(
    conn: &mut PgConnection,
    workflows: &Workflows,
    event: &TriggerEvent<'_>,
    named: &Value,
    reason: &str,
) -> sqlx::Result<()> {
    for workflow in workflows.triggered_by(event.name) {
        let inserted = sqlx::query!(
            "with version as (
                 insert into workflow_versions (id, workflow, definition) values ($7, $2, $8)
                 on conflict (id) do nothing
             )
             insert into workflow_runs (id, workflow, entry_key, contact, trigger_event, event,
                                        version, trigger_key, state, exit_reason, finished_at)
             values ($1, $2, 'unstarted:' || $9, $3, $4, $5, $7, $9, 'exited', $6, now())
             on conflict (workflow, entry_key) do nothing",
            Uuid::now_v7(),
            workflow.name,
            named,
            event.name,
            event.data,
            reason,
            workflow.version,
            workflow.definition(),
            event.key,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted > 0 {
            tracing::info!(workflow = %workflow.name, trigger_key = event.key, reason, "run not started");
        }
    }
    Ok(())
}

/// The Clerk event that caused a lifecycle event: its `svix-id` and payload.
#[derive(Debug, Clone, Copy)]
pub struct ClerkCause<'a> {
    pub svix_id: &'a str,
    pub payload: &'a Value,
}

/// Starts the workflows lifecycle event `event` triggers for `contact`, in the caller's
/// transaction. Their runs see `event` as `lifecycle::event_json` shapes it; one caused
/// by a Clerk delivery is keyed by its `svix-id` (a redelivery starts nothing twice).
/// Returns how many runs started.
pub async fn start_lifecycle_runs(
    conn: &mut PgConnection,
    workflows: &Workflows,
    event: LifecycleEvent,
    via: Via,
    cause: Option<ClerkCause<'_>>,
    contact: &Contact,
) -> sqlx::Result<usize> {
    if workflows.triggered_by(event.name()).next().is_none() {
        return Ok(0); // the common case: no JSON to build
    }
    let data = event_json(event, via, cause.map(|cause| cause.payload));
    let key = match cause {
        Some(cause) => cause.svix_id.to_owned(),
        None => Uuid::now_v7().to_string(),
    };
    let trigger = TriggerEvent {
        name: event.name(),
        key: &key,
        data: &data,
    };
    start_runs(conn, workflows, &trigger, contact, Utc::now()).await
}

/// Starts the workflows of the lifecycle event a contact write emits (none when the
/// write emits none), caused by `via`, and tells the webhook endpoints of the change
/// (created, unsubscribed, lists joined and left).
pub async fn start_for_change(
    conn: &mut PgConnection,
    workflows: &Workflows,
    upserted: &Upserted,
    via: Via,
) -> sqlx::Result<usize> {
    let mut news = match upserted.change {
        Change::Created => vec![ContactNews::Created],
        Change::Unsubscribed => vec![ContactNews::Unsubscribed],
        Change::Updated | Change::Unchanged => Vec::new(),
    };
    news.extend(list_news(
        &upserted.lists_before,
        &upserted.contact.mailing_lists,
    ));
    contact_news(conn, workflows.webhooks(), &upserted.contact, &news).await?;
    match upserted.change.lifecycle_event() {
        Some(event) => {
            start_lifecycle_runs(conn, workflows, event, via, None, &upserted.contact).await
        }
        None => Ok(0),
    }
}

/// Starts the run of a transactional send through the API, in the caller's
/// transaction: `contact` is the recipient's contact if there is one, `copy` what the
/// email is rendered with and sent to (`email` at least), `event` the request as
/// `transactional_event` shapes it.
pub async fn start_transactional_run(
    conn: &mut PgConnection,
    contact: Option<Uuid>,
    copy: &Value,
    event: &Value,
    now: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    let run_id = Uuid::now_v7();
    sqlx::query!(
        "insert into workflow_runs (id, workflow, entry_key, contact_id, contact, trigger_event, event, trigger_key)
         values ($1, $2, $3, $4, $5, $2, $6, $3)",
        run_id,
        TRANSACTIONAL,
        run_id.to_string(),
        contact,
        copy,
        event,
    )
    .execute(&mut *conn)
    .await?;
    enqueue_step(conn, run_id, 0, now).await?;
    Ok(run_id)
}

/// What a transactional run's templates see as `event`: the template and its data
/// variables under `data`.
pub fn transactional_event(template: &str, data_variables: &Value) -> Value {
    json!({ "type": TRANSACTIONAL, "transactionalId": template, "data": data_variables })
}

/// Starts the one-step run of campaign `campaign` (its `event` as templates see it) for
/// every subscribed contact `filter` matches, with each run's first job, in the
/// caller's transaction: one statement, however many. A contact already in the
/// campaign gets no second run. Returns how many runs started.
pub async fn start_campaign_runs(
    conn: &mut PgConnection,
    campaign: Uuid,
    event: &Value,
    filter: &Filter,
) -> sqlx::Result<u64> {
    let mut query = QueryBuilder::<Postgres>::new(
        "with started as (
             insert into workflow_runs (id, workflow, entry_key, contact_id, contact, trigger_event, event, trigger_key)
             select gen_random_uuid(), ",
    );
    query
        .push_bind(CAMPAIGN)
        .push(", ")
        .push_bind(campaign.to_string())
        .push(" || ':' || id, id, jsonb_build_object('email', email), ")
        .push_bind(CAMPAIGN)
        .push(", ")
        .push_bind(event.clone())
        .push(", ")
        .push_bind(campaign.to_string())
        .push(" from contacts where subscribed and ");
    push_filter(&mut query, filter);
    // The job of each run's step 0, keyed and shaped as `enqueue_step` does, and bulk:
    // behind every other email.
    query
        .push(
            " on conflict (workflow, entry_key) do nothing
             returning id
         )
         insert into jobs (kind, key, payload, run_at, max_attempts, bulk)
         select ",
        )
        .push_bind(STEP_JOB)
        .push(", id::text || ':0', jsonb_build_object('run', id, 'step', 0), now(), ")
        .push_bind(STEP_ATTEMPTS)
        .push(", true from started on conflict (kind, key) do nothing");
    let started = query.build().execute(&mut *conn).await?.rows_affected();
    sqlx::query!("select pg_notify($1, '')", crate::jobs::NOTIFY_CHANNEL)
        .execute(conn)
        .await?;
    Ok(started)
}

/// Adds the job for step `step` of run `run_id`, due at `run_at`.
async fn enqueue_step(
    conn: &mut PgConnection,
    run_id: Uuid,
    step: i32,
    run_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let key = format!("{run_id}:{step}");
    let payload = json!({ "run": run_id, "step": step });
    let job = NewJob {
        kind: STEP_JOB,
        key: Some(&key),
        payload: &payload,
        run_at,
        max_attempts: STEP_ATTEMPTS,
    };
    enqueue_job(conn, &job).await?;
    Ok(())
}

/// The runs with these IDs (those that exist), in one query.
pub async fn find_runs(conn: &mut PgConnection, run_ids: &[Uuid]) -> sqlx::Result<Vec<Run>> {
    sqlx::query_as!(
        Run,
        r#"select id, workflow, contact_id, contact, event, state as "state: RunState", current_step,
                  version, trigger_key
           from workflow_runs where id = any($1)"#,
        run_ids
    )
    .fetch_all(conn)
    .await
}

/// Moves the run from step `from` to the next, due at `run_at`; completes it after its
/// last step. Does nothing if another worker moved it already.
pub async fn advance_run(
    conn: &mut PgConnection,
    run_id: Uuid,
    from: i32,
    steps: usize,
    run_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let advance = Advance {
        run: run_id,
        from,
        steps,
        run_at,
    };
    advance_runs(conn, &[advance]).await
}

/// A run to move on from step `from` of its `steps`, its next step due at `run_at`.
#[derive(Debug, Clone, Copy)]
pub struct Advance {
    pub run: Uuid,
    pub from: i32,
    pub steps: usize,
    pub run_at: DateTime<Utc>,
}

/// Moves each run on as `advance_run` does, in one statement: the moves and the next
/// steps' jobs (keyed and shaped as `enqueue_step` does) commit together, so a crash
/// cannot leave a run on a step with no job. A run another worker moved already is
/// left alone.
pub async fn advance_runs(conn: &mut PgConnection, advances: &[Advance]) -> sqlx::Result<()> {
    if advances.is_empty() {
        return Ok(());
    }
    let runs: Vec<Uuid> = advances.iter().map(|a| a.run).collect();
    let from: Vec<i32> = advances.iter().map(|a| a.from).collect();
    let finished: Vec<bool> = advances
        .iter()
        .map(|a| usize::try_from(a.from + 1).is_ok_and(|next| next >= a.steps))
        .collect();
    let run_at: Vec<DateTime<Utc>> = advances.iter().map(|a| a.run_at).collect();
    let enqueued = sqlx::query!(
        "with advance as (
             select * from unnest($1::uuid[], $2::int[], $3::bool[], $4::timestamptz[])
                 as a(run_id, step, finished, run_at)
         ), moved as (
             update workflow_runs r set
                 current_step = a.step + 1,
                 state = case when a.finished then 'completed' else r.state end,
                 finished_at = case when a.finished then now() end,
                 updated_at = now()
             from advance a
             where r.id = a.run_id and r.current_step = a.step and r.state = 'active'
             returning r.id, a.step + 1 as next, a.finished, a.run_at
         )
         insert into jobs (kind, key, payload, run_at, max_attempts)
         select $5, id::text || ':' || next, jsonb_build_object('run', id, 'step', next), run_at, $6
         from moved where not finished
         on conflict (kind, key) do nothing",
        &runs,
        &from,
        &finished,
        &run_at,
        STEP_JOB,
        STEP_ATTEMPTS,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if enqueued > 0 {
        // Delivered at commit, and only then: a rolled-back job wakes nobody.
        sqlx::query!("select pg_notify($1, '')", crate::jobs::NOTIFY_CHANNEL)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Ends the run early at step `step`, keeping why; a late copy of an earlier step
/// cannot end a run that has moved on.
pub async fn exit_run(
    conn: &mut PgConnection,
    run_id: Uuid,
    step: i32,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update workflow_runs set state = 'exited', exit_reason = $3, finished_at = now(), updated_at = now()
         where id = $1 and current_step = $2 and state = 'active'",
        run_id,
        step,
        reason,
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct RunFilters {
    pub workflow: Option<String>,
    /// active, completed or exited.
    pub state: Option<String>,
}

/// A page of runs, newest first.
pub async fn list_runs(
    pool: &PgPool,
    filters: &RunFilters,
    paging: &PageQuery,
) -> Result<Page<Value>, InputError> {
    let state = filters
        .state
        .as_deref()
        .map(|state| RunState::parse("state", state))
        .transpose()?;
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<Uuid>().ok())?;
    let rows = sqlx::query!(
        "select id, workflow, contact_id, contact ->> 'email' as email, trigger_event, state,
                current_step, exit_reason, created_at, finished_at
         from workflow_runs
         where ($1::text is null or workflow = $1) and ($2::text is null or state = $2)
           and ($3::uuid is null or id < $3)
         order by id desc limit $4",
        filters.workflow,
        state.map(RunState::as_str),
        cursor,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    Ok(page_of(
        rows,
        limit,
        |r| r.id.to_string(),
        |r| {
            json!({
                "id": r.id, "workflow": r.workflow, "contactId": r.contact_id, "email": r.email,
                "trigger": r.trigger_event, "state": r.state, "currentStep": r.current_step,
                "exitReason": r.exit_reason, "createdAt": r.created_at, "finishedAt": r.finished_at,
            })
        },
    ))
}
