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
    let (growth, funnel, events, active) = tokio::try_join!(
        async {
            Ok::<_, DashboardError>(analytics::growth(&mut *snapshot(&pool).await?, &range).await?)
        },
        async { Ok(analytics::waitlist_funnel(&mut *snapshot(&pool).await?, &range).await?) },
        async { Ok(analytics::event_counts(&mut *snapshot(&pool).await?, &range).await?) },
        async { Ok(analytics::active_users(&mut *snapshot(&pool).await?, &range).await?) },
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
    let sections = sections(&labels, &growth, &funnel, &events, &active);
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
