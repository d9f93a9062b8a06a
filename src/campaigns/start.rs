//! A campaign's start: when its time comes, its audience is fixed (the subscribed
//! contacts its list and segment match at that moment) and each recipient's send is
//! queued, all in one transaction. A start run twice, or on two replicas at once,
//! starts each recipient once.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::store::{Campaign, find_campaign, lock_campaign, settle_sent};
use super::{CampaignStatus, run_event};
use crate::config::ConfigFile;
use crate::email::templates::Templates;
use crate::input::InputError;
use crate::segments::check_filter;
use crate::segments::filter::{Condition, Filter};
use crate::segments::store::find_segment;
use crate::workflows::runs::start_campaign_runs;

/// Starts campaign `id` if it is scheduled for `due` (the start job's time) or earlier;
/// returns how many sends it queued.
pub async fn start_campaign(
    pool: &PgPool,
    config: &ConfigFile,
    templates: &Templates,
    id: Uuid,
    due: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    if lock_campaign(&mut tx, id).await? != Some(CampaignStatus::Scheduled) {
        return Ok(0); // a draft again, cancelled, or started already
    }
    let Some(campaign) = find_campaign(&mut tx, id).await? else {
        return Ok(0);
    };
    if campaign.scheduled_at.is_some_and(|at| at > due) {
        return Ok(0); // moved later meanwhile; its job waits for the new time
    }
    let filter = match audience(&mut tx, config, templates, &campaign).await? {
        Ok(filter) => filter,
        Err(problem) => {
            sqlx::query!(
                "update campaigns set status = 'cancelled', problem = $2, finished_at = now(), updated_at = now()
                 where id = $1",
                id,
                problem
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::warn!(campaign = %id, problem, "campaign cancelled");
            return Ok(0);
        }
    };
    let event = run_event(&campaign);
    let started = start_campaign_runs(&mut tx, id, &event, &filter).await?;
    sqlx::query!(
        "update campaigns set status = 'sending', started_at = now(), updated_at = now() where id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(campaign = %id, recipients = started, "campaign started");
    if started == 0 {
        settle_sent(pool, Some(id)).await?;
    }
    Ok(started)
}

/// Who the campaign goes to, as of now; `Err` says why it cannot go at all (its
/// template, list or segment no longer usable).
async fn audience(
    conn: &mut sqlx::PgConnection,
    config: &ConfigFile,
    templates: &Templates,
    campaign: &Campaign,
) -> sqlx::Result<Result<Filter, String>> {
    if !templates.contains(&campaign.template) {
        return Ok(Err(format!("the template {:?} is gone", campaign.template)));
    }
    let mut conditions = Vec::new();
    if let Some(segment) = campaign.segment_id {
        let checked = match find_segment(conn, segment).await? {
            Some(saved) => check_filter(conn, config, &saved.filter).await,
            None => Err(crate::input::Invalid::new("it is gone").into()),
        };
        match checked {
            Ok(filter) => conditions.push(Condition::Group(filter)),
            Err(InputError::Invalid(invalid)) => {
                return Ok(Err(format!("the segment cannot be used: {invalid}")));
            }
            Err(InputError::Database(error)) => return Err(error),
        }
    }
    if let Some(list) = &campaign.mailing_list_id {
        if config.list(list).is_none() {
            return Ok(Err(format!(
                "the mailing list {list:?} is no longer in the config file"
            )));
        }
        conditions.push(Condition::MailingList {
            id: list.clone(),
            negate: false,
        });
    }
    Ok(Ok(Filter {
        match_all: true,
        conditions,
    }))
}
