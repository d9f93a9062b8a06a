//! Analytics: the API's figures over a chosen range and interval, each drawn as an SVG
//! chart with its numbers in a table below.

use actix_web::{HttpResponse, get, web};
use minijinja::{Value, context};
use sqlx::PgPool;

use super::charts::{Series, svg};
use super::session::Session;
use super::{DashboardError, Views};
use crate::events::analytics;
use crate::events::range::{Interval, RangeQuery, snapshot};
use crate::relays::deliverability::{Deliverability, deliverability};

/// One chart and the table under it.
fn section(title: &str, labels: &[String], series: Vec<Series>, stacked: bool) -> Value {
    let columns: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    let rows: Vec<Vec<String>> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            std::iter::once(label.clone())
                .chain(
                    series
                        .iter()
                        .map(|s| number(s.values.get(i).copied().unwrap_or(0.0))),
                )
                .collect()
        })
        .collect();
    context! { title, svg => Value::from_safe_string(svg(title, labels, &series, stacked)), columns, rows }
}

fn percent(rate: Option<f64>) -> Option<String> {
    rate.map(|r| format!("{:.2}%", r * 100.0))
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

#[get("/analytics")]
pub async fn analytics_page(
    session: Session,
    query: web::Query<RangeQuery>,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
) -> Result<HttpResponse, DashboardError> {
    let range = query.range()?;
    // The four figures at once, each on a connection and snapshot of its own: the page
    // takes as long as the slowest, not the sum.
    let (growth, funnel, events, active, email) = tokio::try_join!(
        async {
            Ok::<_, DashboardError>(analytics::growth(&mut *snapshot(&pool).await?, &range).await?)
        },
        async { Ok(analytics::waitlist_funnel(&mut *snapshot(&pool).await?, &range).await?) },
        async { Ok(analytics::event_counts(&mut *snapshot(&pool).await?, &range).await?) },
        async { Ok(analytics::active_users(&mut *snapshot(&pool).await?, &range).await?) },
        async { Ok(deliverability(&mut *snapshot(&pool).await?, &range).await?) },
    )?;
    let format = match range.interval {
        Interval::Day | Interval::Week => "%b %-d",
        Interval::Month => "%b %Y",
    };
    let labels: Vec<String> = range
        .buckets
        .iter()
        .map(|b| b.format(format).to_string())
        .collect();
    let mut sections = sections(&labels, &growth, &funnel, &events, &active);
    sections.extend(email_sections(&labels, &email));
    let days = |d: Option<f64>| d.map(|s| format!("{:.1} days", s / 86_400.0));
    views.render(
        "analytics.html",
        context! {
            page_title => "Analytics", section => "analytics", csrf => session.csrf(),
            sections,
            from => range.from.format("%Y-%m-%d").to_string(),
            to => range.to.format("%Y-%m-%d").to_string(),
            interval => query.interval.clone().unwrap_or_else(|| "day".into()),
            funnel => context! {
                joined => funnel.joined, graduated => funnel.graduated,
                conversion => funnel.conversion_rate.map(|r| format!("{:.1}%", r * 100.0)),
                median => days(funnel.median_seconds_to_graduate),
                p90 => days(funnel.p90_seconds_to_graduate),
            },
            no_events => events.types.is_empty(),
            email => context! {
                sent => email.totals.sent,
                bounce_rate => percent(email.totals.bounce_rate),
                complaint_rate => percent(email.totals.complaint_rate),
                warnings => email.warnings,
            },
        },
    )
}

/// The page's charts, one per figure, over `labels` (the buckets).
fn sections(
    labels: &[String],
    growth: &[analytics::GrowthBucket],
    funnel: &analytics::WaitlistFunnel,
    events: &analytics::EventCounts,
    active: &[analytics::ActiveUsersBucket],
) -> Vec<Value> {
    let col = |f: &dyn Fn(usize) -> f64| -> Vec<f64> { (0..labels.len()).map(f).collect() };
    vec![
        section(
            "Growth",
            labels,
            vec![
                Series::bar("Sign-ups", col(&|i| growth[i].signups as f64)),
                Series::bar("Deletions", col(&|i| growth[i].deletions as f64)),
                Series::line("Users", col(&|i| growth[i].total_users as f64)),
            ],
            false,
        ),
        section(
            "Churn rate",
            labels,
            vec![Series::line(
                "Deletions / users at start",
                col(&|i| growth[i].churn_rate.unwrap_or(0.0)),
            )],
            false,
        ),
        section(
            "Waitlist funnel",
            labels,
            vec![
                Series::bar("Joined", col(&|i| funnel.buckets[i].joined as f64)),
                Series::bar("Invited", col(&|i| funnel.buckets[i].invited as f64)),
                Series::bar("Graduated", col(&|i| funnel.buckets[i].graduated as f64)),
                Series::bar("Rejected", col(&|i| funnel.buckets[i].rejected as f64)),
            ],
            false,
        ),
        section(
            "Events by type",
            labels,
            events
                .types
                .iter()
                .map(|t| {
                    Series::bar(
                        t,
                        col(&|i| events.buckets[i].counts.get(t).copied().unwrap_or(0) as f64),
                    )
                })
                .collect(),
            true,
        ),
        section(
            "Active users",
            labels,
            vec![
                Series::line(
                    "Users with a new session",
                    col(&|i| active[i].active_users as f64),
                ),
                Series::line("Sessions", col(&|i| active[i].sessions as f64)),
            ],
            false,
        ),
    ]
}

/// What relays reported of the emails sent in each bucket, and the rates (in percent).
fn email_sections(labels: &[String], email: &Deliverability) -> Vec<Value> {
    let col = |f: &dyn Fn(&crate::relays::deliverability::Figures) -> f64| -> Vec<f64> {
        email.buckets.iter().map(|b| f(&b.figures)).collect()
    };
    vec![
        section(
            "Email outcomes",
            labels,
            vec![
                Series::bar("Sent", col(&|f| f.sent as f64)),
                Series::bar("Delivered", col(&|f| f.delivered as f64)),
                Series::bar("Hard bounces", col(&|f| f.hard_bounces as f64)),
                Series::bar("Soft bounces", col(&|f| f.soft_bounces as f64)),
                Series::bar("Complaints", col(&|f| f.complaints as f64)),
            ],
            false,
        ),
        section(
            "Bounce and complaint rates (%)",
            labels,
            vec![
                Series::line(
                    "Hard bounces",
                    col(&|f| f.bounce_rate.unwrap_or(0.0) * 100.0),
                ),
                Series::line(
                    "Complaints",
                    col(&|f| f.complaint_rate.unwrap_or(0.0) * 100.0),
                ),
            ],
            false,
        ),
    ]
}
