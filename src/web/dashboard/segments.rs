//! Segments: the saved ones, a filter builder (three property rows, or the filter's
//! JSON for lists, activity and groups) with the live count and the first matching
//! contacts, and one segment's page to change or delete it.

use actix_web::{HttpResponse, get, post, web};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::session::Session;
use super::{DashboardError, Views, see_other};
use crate::campaigns::store::segment_in_use;
use crate::config::ConfigFile;
use crate::contacts::Contact;
use crate::contacts::properties::{PropertyType, list_custom_properties};
use crate::input::given;
use crate::segments::filter::properties;
use crate::segments::operators::operators;
use crate::segments::store::{
    count_matching, create_segment, delete_segment, find_segment, list_segments, matching_contacts,
    update_segment,
};
use crate::segments::{check_filter, check_name};

/// Contacts shown under a filter.
const SHOWN: i64 = 20;
/// Property rows of the builder.
const ROWS: usize = 3;

#[derive(Debug, Default, Deserialize)]
pub struct BuilderQuery {
    #[serde(rename = "match")]
    match_: Option<String>,
    p0: Option<String>,
    o0: Option<String>,
    v0: Option<String>,
    p1: Option<String>,
    o1: Option<String>,
    v1: Option<String>,
    p2: Option<String>,
    o2: Option<String>,
    v2: Option<String>,
    /// The filter's JSON; when given it is the filter, and the rows are ignored.
    filter: Option<String>,
}

impl BuilderQuery {
    fn rows(&self) -> [(Option<&str>, Option<&str>, Option<&str>); ROWS] {
        [
            (given(&self.p0), given(&self.o0), given(&self.v0)),
            (given(&self.p1), given(&self.o1), given(&self.v1)),
            (given(&self.p2), given(&self.o2), given(&self.v2)),
        ]
    }
}

/// The filter the rows describe, each value typed by its property and operator (a
/// value of the wrong type stays text, for the check to name).
fn rows_filter(
    query: &BuilderQuery,
    kinds: &[(String, PropertyType)],
) -> Option<serde_json::Value> {
    let conditions: Vec<serde_json::Value> = query
        .rows()
        .into_iter()
        .filter_map(|(property, operator, value)| {
            let (property, operator) = (property?, operator?);
            let kind = kinds
                .iter()
                .find(|(name, _)| name == property)
                .map(|(_, kind)| *kind);
            let mut condition = json!({ "property": property, "operator": operator });
            if !matches!(operator, "isEmpty" | "isNotEmpty") {
                let text = value.unwrap_or_default();
                condition["value"] = match (kind, operator) {
                    (_, "withinLastDays") => text
                        .parse::<i64>()
                        .map_or_else(|_| json!(text), |n| json!(n)),
                    (Some(PropertyType::Number), _) => text
                        .parse::<f64>()
                        .map_or_else(|_| json!(text), |n| json!(n)),
                    (Some(PropertyType::Boolean), _) => match text {
                        "true" => json!(true),
                        "false" => json!(false),
                        _ => json!(text),
                    },
                    _ => json!(text),
                };
            }
            Some(condition)
        })
        .collect();
    if conditions.is_empty() {
        return None;
    }
    let match_ = if query.match_.as_deref() == Some("any") {
        "any"
    } else {
        "all"
    };
    Some(json!({ "match": match_, "conditions": conditions }))
}

/// What a filter matches now, or why it cannot be used.
struct Matched {
    count: Option<i64>,
    contacts: Vec<serde_json::Value>,
    problem: Option<String>,
}

async fn matched(
    pool: &PgPool,
    config: &ConfigFile,
    filter: &serde_json::Value,
) -> Result<Matched, DashboardError> {
    let checked = check_filter(&mut *pool.acquire().await?, config, filter).await;
    let filter = match checked {
        Ok(filter) => filter,
        Err(crate::input::InputError::Invalid(invalid)) => {
            let problem = match &invalid.field {
                Some(field) => format!("{field}: {}", invalid.message),
                None => invalid.message,
            };
            return Ok(Matched {
                count: None,
                contacts: Vec::new(),
                problem: Some(problem),
            });
        }
        Err(crate::input::InputError::Database(error)) => return Err(error.into()),
    };
    let (count, contacts) = tokio::try_join!(
        count_matching(pool, &filter),
        matching_contacts(pool, &filter, None, SHOWN)
    )?;
    Ok(Matched {
        count: Some(count),
        contacts: contacts.iter().map(Contact::details).collect(),
        problem: None,
    })
}

#[get("/segments")]
pub async fn segments_page(
    session: Session,
    query: web::Query<BuilderQuery>,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
    config: web::Data<ConfigFile>,
) -> Result<HttpResponse, DashboardError> {
    let custom = list_custom_properties(&mut *pool.acquire().await?).await?;
    let kinds = properties(&custom);
    let written = query
        .filter
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty());
    let filter = match written {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| format!("The filter is not JSON: {e}."))
        }
        None => Ok(rows_filter(&query, &kinds)
            .unwrap_or_else(|| json!({ "match": "all", "conditions": [] }))),
    };
    let (filter_text, matched) = match filter {
        Ok(filter) => (
            serde_json::to_string_pretty(&filter).unwrap_or_default(),
            matched(&pool, &config, &filter).await?,
        ),
        Err(problem) => (
            written.unwrap_or_default().to_owned(),
            Matched {
                count: None,
                contacts: Vec::new(),
                problem: Some(problem),
            },
        ),
    };
    let saved: Vec<serde_json::Value> = list_segments(&pool, None, 200)
        .await?
        .iter()
        .map(|s| s.to_json())
        .collect();
    let rows: Vec<Value> = query
        .rows()
        .into_iter()
        .map(|(p, o, v)| context! { property => p, operator => o, value => v })
        .collect();
    views.render(
        "segments.html",
        context! {
            page_title => "Segments", section => "segments", csrf => session.csrf(),
            saved => Value::from(Serde(&saved)),
            properties => kinds.iter().map(|(name, kind)| context! { name, kind => kind.as_str() }).collect::<Vec<_>>(),
            operators => [PropertyType::String, PropertyType::Number, PropertyType::Boolean, PropertyType::Date]
                .map(|kind| context! { kind => kind.as_str(), names => operators(kind).to_vec() }),
            rows, match_any => query.match_.as_deref() == Some("any"),
            filter_text, count => matched.count, problem => matched.problem,
            contacts => Value::from(Serde(&matched.contacts)),
        },
    )
}

#[derive(Deserialize)]
pub struct SegmentForm {
    csrf: String,
    name: String,
    filter: String,
}

impl SegmentForm {
    /// The name and the filter, checked.
    async fn checked(
        &self,
        pool: &PgPool,
        config: &ConfigFile,
    ) -> Result<(String, serde_json::Value), DashboardError> {
        let name = check_name(&self.name)?;
        let filter: serde_json::Value = serde_json::from_str(&self.filter)
            .map_err(|e| DashboardError::BadRequest(format!("The filter is not JSON: {e}.")))?;
        check_filter(&mut *pool.acquire().await?, config, &filter).await?;
        Ok((name, filter))
    }
}

#[post("/segments")]
pub async fn save_segment(
    session: Session,
    form: web::Form<SegmentForm>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let (name, filter) = form.checked(&pool, &config).await?;
    let id = create_segment(&mut *pool.acquire().await?, &name, &filter).await?;
    Ok(see_other(&format!("/segments/{id}")))
}

#[get("/segments/{id}")]
pub async fn segment_page(
    session: Session,
    id: web::Path<Uuid>,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
    config: web::Data<ConfigFile>,
) -> Result<HttpResponse, DashboardError> {
    let segment = find_segment(&mut *pool.acquire().await?, *id)
        .await?
        .ok_or(DashboardError::NotFound("There is no such segment."))?;
    let matched = matched(&pool, &config, &segment.filter).await?;
    views.render(
        "segment.html",
        context! {
            page_title => segment.name.clone(), section => "segments", csrf => session.csrf(),
            segment => Value::from(Serde(segment.to_json())),
            filter_text => serde_json::to_string_pretty(&segment.filter).unwrap_or_default(),
            count => matched.count, problem => matched.problem,
            contacts => Value::from(Serde(&matched.contacts)),
        },
    )
}

#[post("/segments/{id}")]
pub async fn change_segment(
    session: Session,
    id: web::Path<Uuid>,
    form: web::Form<SegmentForm>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let (name, filter) = form.checked(&pool, &config).await?;
    if !update_segment(&mut *pool.acquire().await?, *id, Some(&name), Some(&filter)).await? {
        return Err(DashboardError::NotFound("There is no such segment."));
    }
    Ok(see_other(&format!("/segments/{id}")))
}

#[post("/segments/{id}/delete")]
pub async fn remove_segment(
    session: Session,
    id: web::Path<Uuid>,
    form: web::Form<super::login::CsrfForm>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let mut conn = pool.acquire().await?;
    if segment_in_use(&mut conn, *id).await? {
        return Err(DashboardError::BadRequest(
            "A campaign sends to this segment; it cannot be deleted.".to_owned(),
        ));
    }
    delete_segment(&mut conn, *id).await?;
    Ok(see_other("/segments"))
}
