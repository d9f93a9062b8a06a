//! A campaign's start: when its time comes, its audience is fixed (the subscribed
//! contacts its list and segment match at that moment) and each recipient's send is
//! queued, all in one transaction. A start run twice, or on two replicas at once,
//! starts each recipient once.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::store::{find_campaign, lock_campaign, settle_sent};
use super::{CampaignStatus, run_event};
use crate::config::ConfigFile;
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
    let mut conditions = Vec::new();
    if let Some(segment) = campaign.segment_id {
        let checked = match find_segment(&mut tx, segment).await? {
            Some(saved) => check_filter(&mut tx, config, &saved.filter).await,
            None => Err(crate::input::Invalid::new("its segment is gone").into()),
        };
        match checked {
            Ok(filter) => conditions.push(Condition::Group(filter)),
            Err(InputError::Invalid(invalid)) => {
                let problem = format!("the segment cannot be used: {invalid}");
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
            Err(InputError::Database(error)) => return Err(error.into()),
        }
    }
    if let Some(list) = &campaign.mailing_list_id {
        conditions.push(Condition::MailingList {
            id: list.clone(),
            negate: false,
        });
    }
    let filter = Filter {
        match_all: true,
        conditions,
    };
    let event = run_event(id, &campaign.name, &campaign.template);
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
        settle_sent(pool, id).await?;
    }
    Ok(started)
}
