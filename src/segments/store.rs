//! Segments in the database, and the contacts they match: counted and paged by
//! PostgreSQL with the filter as SQL.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::filter::Filter;
use super::sql::push_filter;
use crate::contacts::Contact;

/// A saved segment.
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: Uuid,
    pub name: String,
    /// As the client wrote it.
    pub filter: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Segment {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "filter": self.filter,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }
}

pub async fn create_segment(
    conn: &mut PgConnection,
    name: &str,
    filter: &Value,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "insert into audience_segments (id, name, filter) values ($1, $2, $3) returning id",
        Uuid::now_v7(),
        name,
        filter
    )
    .fetch_one(conn)
    .await
}

/// Changes what is given; `false` when there is no such segment.
pub async fn update_segment(
    conn: &mut PgConnection,
    id: Uuid,
    name: Option<&str>,
    filter: Option<&Value>,
) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "update audience_segments set name = coalesce($2, name), filter = coalesce($3, filter),
             updated_at = now()
         where id = $1",
        id,
        name,
        filter
    )
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn delete_segment(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query!("delete from audience_segments where id = $1", id)
        .execute(conn)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

pub async fn find_segment(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Segment>> {
    sqlx::query_as!(
        Segment,
        "select id, name, filter, created_at, updated_at from audience_segments where id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

/// Segments newest first, after `cursor`, at most `limit`.
pub async fn list_segments(
    pool: &PgPool,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Segment>> {
    sqlx::query_as!(
        Segment,
        "select id, name, filter, created_at, updated_at from audience_segments
         where ($1::uuid is null or id < $1) order by id desc limit $2",
        cursor,
        limit
    )
    .fetch_all(pool)
    .await
}

/// How many contacts `filter` matches.
pub async fn count_matching(pool: &PgPool, filter: &Filter) -> sqlx::Result<i64> {
    let mut query = QueryBuilder::<Postgres>::new("select count(*) from contacts where ");
    push_filter(&mut query, filter);
    query.build_query_scalar().fetch_one(pool).await
}

/// The contacts `filter` matches, newest first, after `cursor`, at most `limit`.
pub async fn matching_contacts(
    pool: &PgPool,
    filter: &Filter,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Contact>> {
    let mut query = QueryBuilder::<Postgres>::new("select * from contacts where ");
    push_filter(&mut query, filter);
    if let Some(cursor) = cursor {
        query.push(" and id < ").push_bind(cursor);
    }
    query.push(" order by id desc limit ").push_bind(limit);
    query.build_query_as().fetch_all(pool).await
}
