//! Campaigns in the database, and their figures from their runs and deliveries.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{CampaignStatus, START_JOB};
use crate::jobs::queue::{NewJob, enqueue_job};

/// A campaign as stored.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub template: String,
    pub mailing_list_id: Option<String>,
    pub segment_id: Option<Uuid>,
    pub status: CampaignStatus,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub problem: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Opens and clicks tracked.
    pub track: bool,
}

impl Campaign {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "template": self.template,
            "mailingListId": self.mailing_list_id,
            "audienceSegmentId": self.segment_id,
            "status": self.status.label(),
            "scheduledAt": self.scheduled_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "problem": self.problem,
            "createdAt": self.created_at,
            "track": self.track,
        })
    }
}

/// What a campaign is made of.
pub struct CampaignFields<'a> {
    pub name: &'a str,
    pub template: &'a str,
    pub mailing_list_id: Option<&'a str>,
    pub segment_id: Option<Uuid>,
    /// `None`: a draft.
    pub send_at: Option<DateTime<Utc>>,
    pub track: bool,
}

impl CampaignFields<'_> {
    /// Scheduled with a time, else a draft.
    pub fn status(&self) -> CampaignStatus {
        match self.send_at {
            Some(_) => CampaignStatus::Scheduled,
            None => CampaignStatus::Draft,
        }
    }
}

/// Stores a campaign, and its start job when it has a time.
pub async fn create_campaign(
    conn: &mut PgConnection,
    fields: &CampaignFields<'_>,
) -> sqlx::Result<(Uuid, CampaignStatus)> {
    let id = Uuid::now_v7();
    let status = fields.status();
    sqlx::query!(
        "insert into campaigns (id, name, template, mailing_list_id, segment_id, status, scheduled_at, track)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        fields.name,
        fields.template,
        fields.mailing_list_id,
        fields.segment_id,
        status as CampaignStatus,
        fields.send_at,
        fields.track,
    )
    .execute(&mut *conn)
    .await?;
    schedule_start(conn, id, fields.send_at).await?;
    Ok((id, status))
}

/// Replaces a draft or scheduled campaign's fields (and its time); `None` when there is
/// no such campaign, its status when it can no longer change.
pub async fn update_campaign(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &CampaignFields<'_>,
) -> sqlx::Result<Option<Result<CampaignStatus, CampaignStatus>>> {
    let Some(current) = lock_campaign(conn, id).await? else {
        return Ok(None);
    };
    if !current.is_editable() {
        return Ok(Some(Err(current)));
    }
    let status = fields.status();
    sqlx::query!(
        "update campaigns set name = $2, template = $3, mailing_list_id = $4, segment_id = $5,
             status = $6, scheduled_at = $7, track = $8, updated_at = now()
         where id = $1",
        id,
        fields.name,
        fields.template,
        fields.mailing_list_id,
        fields.segment_id,
        status as CampaignStatus,
        fields.send_at,
        fields.track,
    )
    .execute(&mut *conn)
    .await?;
    schedule_start(conn, id, fields.send_at).await?;
    Ok(Some(Ok(status)))
}

/// The campaign's status, its row locked until the transaction ends.
pub async fn lock_campaign(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<CampaignStatus>> {
    sqlx::query_scalar!(
        r#"select status as "status: CampaignStatus" from campaigns where id = $1 for update"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Adds the start job at `send_at`, or moves the waiting one there; a draft's job
/// waits for ever (the start does nothing for a campaign that is not scheduled).
async fn schedule_start(
    conn: &mut PgConnection,
    id: Uuid,
    send_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    let Some(send_at) = send_at else {
        return Ok(());
    };
    // One job per (campaign, time): a job for a time since moved finds the campaign
    // scheduled later and does nothing, and the job of the new time starts it.
    let key = format!("{id}:{}", send_at.timestamp_micros());
    let payload = json!({ "campaign": id });
    let job = NewJob {
        kind: START_JOB,
        key: Some(&key),
        payload: &payload,
        run_at: send_at,
        max_attempts: 10,
    };
    if enqueue_job(conn, &job).await?.is_none() {
        // The same time again (back from a draft): its job runs again if it ended.
        sqlx::query!(
            "update jobs set state = 'scheduled', attempts = 0, finished_at = null, last_error = null
             where kind = $1 and key = $2 and state in ('done', 'dead')",
            START_JOB,
            key,
        )
        .execute(conn)
        .await?;
    }
    Ok(())
}

pub async fn find_campaign(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Campaign>> {
    sqlx::query_as!(
        Campaign,
        r#"select id, name, template, mailing_list_id, segment_id, status as "status: CampaignStatus",
                  scheduled_at, started_at, finished_at, problem, created_at, track
           from campaigns where id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Campaigns newest first, after `cursor`, at most `limit`.
pub async fn list_campaigns(
    pool: &PgPool,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Campaign>> {
    sqlx::query_as!(
        Campaign,
        r#"select id, name, template, mailing_list_id, segment_id, status as "status: CampaignStatus",
                  scheduled_at, started_at, finished_at, problem, created_at, track
           from campaigns where ($1::uuid is null or id < $1) order by id desc limit $2"#,
        cursor,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Cancels a campaign not yet sent: its waiting sends end (a send already handed to
/// SMTP finishes). `None` when there is no such campaign; its status when it is over.
pub async fn cancel_campaign(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<Result<(), CampaignStatus>>> {
    let Some(status) = lock_campaign(conn, id).await? else {
        return Ok(None);
    };
    if matches!(status, CampaignStatus::Sent | CampaignStatus::Cancelled) {
        return Ok(Some(Err(status)));
    }
    if status == CampaignStatus::Sending && settle(conn, Some(id)).await? > 0 {
        return Ok(Some(Err(CampaignStatus::Sent))); // nothing was left to cancel
    }
    sqlx::query!(
        "update campaigns set status = 'cancelled', finished_at = now(), updated_at = now() where id = $1",
        id
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "update workflow_runs set state = 'exited', exit_reason = 'the campaign was cancelled',
             finished_at = now(), updated_at = now()
         where workflow = 'campaign' and trigger_key = $1 and state = 'active'",
        id.to_string()
    )
    .execute(conn)
    .await?;
    Ok(Some(Ok(())))
}

/// Marks sending campaigns sent once none of their runs is active: campaign `id`, or
/// every one. Read paths call it, so a campaign shows `Sent` as soon as it is.
pub async fn settle_sent(pool: &PgPool, id: Option<Uuid>) -> sqlx::Result<()> {
    settle(&mut *pool.acquire().await?, id).await?;
    Ok(())
}

async fn settle(conn: &mut PgConnection, id: Option<Uuid>) -> sqlx::Result<u64> {
    let settled = sqlx::query!(
        "update campaigns c set status = 'sent', finished_at = now(), updated_at = now()
         where ($1::uuid is null or c.id = $1) and c.status = 'sending'
           and not exists (select 1 from workflow_runs
                           where workflow = 'campaign' and trigger_key = c.id::text and state = 'active')",
        id,
    )
    .execute(conn)
    .await?;
    Ok(settled.rows_affected())
}

/// The campaign's figures: recipients, emails by outcome, sends skipped because the
/// contact unsubscribed (or was deleted, or the campaign was cancelled) first, and the
/// send rate over the last minute (`perSecond`), and what relays reported: emails
/// `delivered`, `bounced` (hard or soft) and `complained` about; and from tracking
/// the emails `opened` (by a person, not a mail provider's proxy) and `clicked`.
pub async fn stats(pool: &PgPool, id: Uuid) -> sqlx::Result<Value> {
    let row = sqlx::query!(
        r#"select count(*) as "recipients!",
                  count(*) filter (where d.state = 'sent') as "sent!",
                  count(*) filter (where d.state in ('failed', 'unknown')) as "failed!",
                  count(*) filter (where d.state = 'suppressed') as "suppressed!",
                  count(*) filter (where d.id is null and r.exit_reason = 'the contact unsubscribed') as "unsubscribed!",
                  count(*) filter (where d.id is null and r.state = 'exited'
                                   and r.exit_reason is distinct from 'the contact unsubscribed') as "skipped!",
                  count(*) filter (where r.state = 'active') as "remaining!",
                  count(*) filter (where d.state = 'sent' and d.sent_at > now() - interval '1 minute') as "sent_last_minute!",
                  count(*) filter (where d.delivered_at is not null) as "delivered!",
                  count(*) filter (where exists (select 1 from email_events e where e.delivery_id = d.id
                                                 and e.kind in ('hard_bounce', 'soft_bounce'))) as "bounced!",
                  count(*) filter (where exists (select 1 from email_events e where e.delivery_id = d.id
                                                 and e.kind = 'complaint')) as "complained!",
                  count(*) filter (where exists (select 1 from email_engagements g where g.delivery_id = d.id
                                                 and g.kind = 'open' and not g.machine)) as "opened!",
                  count(*) filter (where exists (select 1 from email_engagements g where g.delivery_id = d.id
                                                 and g.kind = 'click')) as "clicked!"
           from workflow_runs r left join email_deliveries d on d.run_id = r.id and d.step = 0
           where r.workflow = 'campaign' and r.trigger_key = $1"#,
        id.to_string()
    )
    .fetch_one(pool)
    .await?;
    Ok(json!({
        "recipients": row.recipients, "sent": row.sent, "failed": row.failed,
        "suppressed": row.suppressed, "unsubscribed": row.unsubscribed,
        "skipped": row.skipped, "remaining": row.remaining,
        "delivered": row.delivered, "bounced": row.bounced, "complained": row.complained,
        "opened": row.opened, "clicked": row.clicked,
        "perSecond": (row.sent_last_minute as f64 / 6.0).round() / 10.0,
    }))
}

/// Whether a campaign names this segment (which then cannot be deleted).
pub async fn segment_in_use(conn: &mut PgConnection, segment: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from campaigns where segment_id = $1) as "used!""#,
        segment
    )
    .fetch_one(conn)
    .await
}
