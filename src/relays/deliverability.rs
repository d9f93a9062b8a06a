//! Deliverability figures: of the emails sent in a range, how many relays reported
//! delivered, hard-bounced, soft-bounced or complained about, per bucket and per
//! template, workflow and campaign, with the rates mailbox providers watch. Each email
//! counts once per kind however often a relay repeats it, and is counted in the bucket
//! it was sent in, so a rate never passes 1.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::events::range::Range;

/// Gmail's and Yahoo's bulk sender limit on spam complaints (0.3%).
pub const COMPLAINT_RATE_LIMIT: f64 = 0.003;
/// Hard bounces past this (2%) mean a list with dead addresses.
pub const HARD_BOUNCE_RATE_LIMIT: f64 = 0.02;

/// Emails sent and what relays reported of them.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub sent: i64,
    pub delivered: i64,
    pub hard_bounces: i64,
    pub soft_bounces: i64,
    pub complaints: i64,
    /// Hard bounces over sent; null with nothing sent.
    pub bounce_rate: Option<f64>,
    pub complaint_rate: Option<f64>,
}

impl Figures {
    fn new(sent: i64, delivered: i64, hard: i64, soft: i64, complaints: i64) -> Self {
        let rate = |n: i64| (sent > 0).then(|| n as f64 / sent as f64);
        Self {
            sent,
            delivered,
            hard_bounces: hard,
            soft_bounces: soft,
            complaints,
            bounce_rate: rate(hard),
            complaint_rate: rate(complaints),
        }
    }

    /// What passes the limits, in words.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let percent = |rate: f64| format!("{:.2}%", rate * 100.0);
        if let Some(rate) = self.complaint_rate.filter(|r| *r > COMPLAINT_RATE_LIMIT) {
            warnings.push(format!(
                "spam complaints are {} of emails sent, over the 0.3% Gmail and Yahoo allow bulk senders",
                percent(rate)
            ));
        }
        if let Some(rate) = self.bounce_rate.filter(|r| *r > HARD_BOUNCE_RATE_LIMIT) {
            warnings.push(format!(
                "hard bounces are {} of emails sent, over 2%: clean the list",
                percent(rate)
            ));
        }
        warnings
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub start: DateTime<Utc>,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Figures for one template, workflow or campaign.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The template's or workflow's name, or the campaign's ID.
    pub key: String,
    /// The campaign's name (campaigns only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deliverability {
    pub totals: Figures,
    pub warnings: Vec<String>,
    pub buckets: Vec<Bucket>,
    pub by_template: Vec<Group>,
    pub by_workflow: Vec<Group>,
    pub by_campaign: Vec<Group>,
}

pub async fn deliverability(
    conn: &mut PgConnection,
    range: &Range,
) -> sqlx::Result<Deliverability> {
    let (starts, ends) = range.bounds();
    let buckets = sqlx::query!(
        r#"select b.start as "start!",
                  count(s.id) as "sent!",
                  count(s.id) filter (where s.delivered) as "delivered!",
                  count(s.id) filter (where s.hard) as "hard!",
                  count(s.id) filter (where s.soft) as "soft!",
                  count(s.id) filter (where s.complained) as "complained!"
           from unnest($1::timestamptz[], $2::timestamptz[]) as b(start, stop)
           left join (select d.id, d.sent_at,
                             bool_or(e.kind = 'delivered') is true as delivered,
                             bool_or(e.kind = 'hard_bounce') is true as hard,
                             bool_or(e.kind = 'soft_bounce') is true as soft,
                             bool_or(e.kind = 'complaint') is true as complained
                      from email_deliveries d left join email_events e on e.delivery_id = d.id
                      where d.sent_at >= $3 and d.sent_at < $4
                      group by d.id) s on s.sent_at >= b.start and s.sent_at < b.stop
           group by b.start order by b.start"#,
        &starts,
        &ends,
        range.from,
        range.to,
    )
    .fetch_all(&mut *conn)
    .await?;
    let buckets: Vec<Bucket> = buckets
        .into_iter()
        .map(|row| Bucket {
            start: row.start,
            figures: Figures::new(row.sent, row.delivered, row.hard, row.soft, row.complained),
        })
        .collect();
    let groups = sqlx::query!(
        r#"with sent as (
             select d.id, d.template, r.workflow, r.trigger_key,
                    bool_or(e.kind = 'delivered') is true as delivered,
                    bool_or(e.kind = 'hard_bounce') is true as hard,
                    bool_or(e.kind = 'soft_bounce') is true as soft,
                    bool_or(e.kind = 'complaint') is true as complained
             from email_deliveries d join workflow_runs r on r.id = d.run_id
             left join email_events e on e.delivery_id = d.id
             where d.sent_at >= $1 and d.sent_at < $2
             group by d.id, r.workflow, r.trigger_key)
           select g.grouping as "grouping!", g.key as "key!",
                  (select c.name from campaigns c where g.grouping = 'campaign' and c.id::text = g.key) as "name?",
                  count(*) as "sent!",
                  count(*) filter (where delivered) as "delivered!",
                  count(*) filter (where hard) as "hard!",
                  count(*) filter (where soft) as "soft!",
                  count(*) filter (where complained) as "complained!"
           from sent
           cross join lateral (values ('template', sent.template), ('workflow', sent.workflow),
                                      ('campaign', case when sent.workflow = 'campaign' then sent.trigger_key end))
                as g(grouping, key)
           where g.key is not null
           group by g.grouping, g.key
           order by g.grouping, count(*) desc, g.key"#,
        range.from,
        range.to,
    )
    .fetch_all(&mut *conn)
    .await?;
    let (mut by_template, mut by_workflow, mut by_campaign) = (Vec::new(), Vec::new(), Vec::new());
    for row in groups {
        let group = Group {
            key: row.key,
            name: row.name,
            figures: Figures::new(row.sent, row.delivered, row.hard, row.soft, row.complained),
        };
        match row.grouping.as_str() {
            "template" => by_template.push(group),
            "workflow" => by_workflow.push(group),
            _ => by_campaign.push(group),
        }
    }
    let sum = |pick: fn(&Figures) -> i64| buckets.iter().map(|b| pick(&b.figures)).sum::<i64>();
    let totals = Figures::new(
        sum(|f| f.sent),
        sum(|f| f.delivered),
        sum(|f| f.hard_bounces),
        sum(|f| f.soft_bounces),
        sum(|f| f.complaints),
    );
    Ok(Deliverability {
        warnings: totals.warnings(),
        totals,
        buckets,
        by_template,
        by_workflow,
        by_campaign,
    })
}
