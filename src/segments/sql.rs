//! A checked filter as a SQL condition over `contacts`, every value bound, so a segment
//! is counted and listed by PostgreSQL and never by loading the audience. Text tests
//! ignore case; "no conditions" matches every contact.

use sqlx::{Postgres, QueryBuilder};

use super::filter::{
    Activity, ActivityTest, Condition, Field, Filter, Scalar, Source, Target, Test,
};
use crate::contacts::properties::PropertyType;
use crate::contacts::search::starts_with_pattern;

/// Appends `filter` as one parenthesised boolean expression.
pub fn push_filter(query: &mut QueryBuilder<Postgres>, filter: &Filter) {
    if filter.conditions.is_empty() {
        query.push("true");
        return;
    }
    let joiner = if filter.match_all { " and " } else { " or " };
    query.push("(");
    for (i, condition) in filter.conditions.iter().enumerate() {
        if i > 0 {
            query.push(joiner);
        }
        push_condition(query, condition);
    }
    query.push(")");
}

fn push_condition(query: &mut QueryBuilder<Postgres>, condition: &Condition) {
    match condition {
        Condition::Group(filter) => push_filter(query, filter),
        Condition::MailingList { id, negate } => {
            query.push(if *negate { "not " } else { "" });
            query
                .push("(mailing_lists ? ")
                .push_bind(id.clone())
                .push(")");
        }
        Condition::Activity(activity) => push_activity(query, activity),
        Condition::Property { field, test } => push_test(query, field, test),
    }
}

/// The field's value, typed: a column, or a custom value of the matching JSON type
/// (anything else is null, as a missing value is).
fn push_value(query: &mut QueryBuilder<Postgres>, field: &Field) {
    match &field.source {
        Source::Column(column) => {
            query.push(*column);
        }
        Source::IsClerkUser => {
            query.push("(user_id is not null)");
        }
        Source::Custom(name) => {
            let (json_type, cast) = match field.kind {
                PropertyType::String => ("string", "text"),
                PropertyType::Number => ("number", "numeric"),
                PropertyType::Boolean => ("boolean", "boolean"),
                PropertyType::Date => ("string", "timestamptz"),
            };
            query
                .push("(case when jsonb_typeof(properties -> ")
                .push_bind(name.clone())
                .push(format_args!(") = '{json_type}'"));
            if field.kind == PropertyType::Date {
                // Only what Roster stores (RFC 3339, years 1 to 9999) is cast: one odd
                // value must not make every query over the property fail.
                query
                    .push(" and (properties ->> ")
                    .push_bind(name.clone())
                    .push(r") ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$'");
            }
            query
                .push(" then (properties ->> ")
                .push_bind(name.clone())
                .push(format_args!(")::{cast} end)"));
        }
    }
}

fn push_test(query: &mut QueryBuilder<Postgres>, field: &Field, test: &Test) {
    let text = field.kind == PropertyType::String;
    query.push("(");
    match test {
        Test::IsEmpty | Test::IsNotEmpty => {
            query.push(if matches!(test, Test::IsNotEmpty) {
                "not "
            } else {
                ""
            });
            if text {
                query.push("coalesce(");
                push_value(query, field);
                query.push(", '') = ''");
            } else {
                push_value(query, field);
                query.push(" is null");
            }
        }
        Test::Equals(value) => push_equals(query, field, " = ", value),
        Test::NotEquals(value) => push_equals(query, field, " is distinct from ", value),
        Test::Contains(value) | Test::StartsWith(value) => {
            let pattern = match test {
                Test::Contains(_) => format!("%{}", starts_with_pattern(value)),
                _ => starts_with_pattern(value),
            };
            query.push("lower(");
            push_value(query, field);
            query.push(") like lower(").push_bind(pattern).push(")");
        }
        Test::GreaterThan(value) | Test::LessThan(value) => {
            push_value(query, field);
            query
                .push(if matches!(test, Test::GreaterThan(_)) {
                    " > "
                } else {
                    " < "
                })
                .push_bind(value.clone())
                .push("::numeric");
        }
        Test::Before(at) | Test::After(at) => {
            push_value(query, field);
            query
                .push(if matches!(test, Test::Before(_)) {
                    " < "
                } else {
                    " > "
                })
                .push_bind(*at);
        }
        Test::WithinLastDays(days) => {
            push_value(query, field);
            query
                .push(" between now() - make_interval(days => ")
                .push_bind(i32::try_from(*days).unwrap_or(i32::MAX))
                .push(") and now()");
        }
    }
    query.push(")");
}

/// `field operator value`, text compared without case.
fn push_equals(query: &mut QueryBuilder<Postgres>, field: &Field, operator: &str, value: &Scalar) {
    match value {
        Scalar::Text(value) => {
            query.push("lower(");
            push_value(query, field);
            query
                .push(")")
                .push(operator)
                .push("lower(")
                .push_bind(value.clone())
                .push(")");
        }
        Scalar::Number(value) => {
            push_value(query, field);
            query
                .push(operator)
                .push_bind(value.clone())
                .push("::numeric");
        }
        Scalar::Bool(value) => {
            push_value(query, field);
            query.push(operator).push_bind(*value);
        }
    }
}

fn push_activity(query: &mut QueryBuilder<Postgres>, activity: &ActivityTest) {
    query.push(if activity.negate { "not " } else { "" });
    query.push(
        "exists (select 1 from workflow_runs r join email_deliveries d on d.run_id = r.id \
         where r.contact_id = contacts.id and d.state = 'sent'",
    );
    match &activity.target {
        Target::Template(template) => query.push(" and d.template = ").push_bind(template.clone()),
        Target::Workflow(workflow) => query.push(" and r.workflow = ").push_bind(workflow.clone()),
        Target::Campaign(campaign) => query
            .push(" and r.workflow = 'campaign' and r.trigger_key = ")
            .push_bind(campaign.to_string()),
    };
    let engagement = match activity.activity {
        Activity::Received => None,
        Activity::Opened => Some("'open' and not g.machine"),
        Activity::Clicked => Some("'click'"),
    };
    if let Some(kind) = engagement {
        query.push(
            " and exists (select 1 from email_engagements g where g.delivery_id = d.id and g.kind = ",
        );
        query.push(kind);
    }
    // Within the last days: of the send, or of the open or click.
    let at = if engagement.is_some() {
        "g.at"
    } else {
        "d.sent_at"
    };
    if let Some(days) = activity.within_days {
        query
            .push(format!(" and {at} >= now() - make_interval(days => "))
            .push_bind(i32::try_from(days).unwrap_or(i32::MAX))
            .push(")");
    }
    if engagement.is_some() {
        query.push(")");
    }
    query.push(")");
}
