//! Workflow versions: a run follows the definition it started with (stored with its
//! first run by `runs::start_runs`), whatever the config file says now. Edits to a
//! workflow apply to new runs; the runs of a workflow removed from the file finish on
//! their version.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::Workflows;
use super::definition::Workflow;
use crate::telemetry::error_chain;

/// The definition a run of workflow `name` started on at `version`: the file's when it
/// is the same, else the stored one. Runs older than versions (`None`) follow the file.
/// `None` when there is none to follow.
pub async fn definition_for(
    conn: &mut PgConnection,
    workflows: &Workflows,
    name: &str,
    version: Option<&str>,
) -> sqlx::Result<Option<Workflow>> {
    let current = workflows.get(name);
    let Some(version) = version else {
        return Ok(current.cloned());
    };
    if let Some(current) = current.filter(|w| w.version == version) {
        return Ok(Some(current.clone()));
    }
    let stored = sqlx::query_scalar!(
        "select definition from workflow_versions where id = $1",
        version
    )
    .fetch_optional(conn)
    .await?;
    Ok(stored.and_then(
        |definition| match Workflow::from_stored(definition, version) {
            Ok(workflow) => Some(workflow),
            Err(error) => {
                tracing::error!(
                    version,
                    error = error_chain(&error),
                    "a stored workflow version does not parse"
                );
                None
            }
        },
    ))
}

/// A version of a workflow with its runs still active.
#[derive(Debug, serde::Serialize)]
pub struct VersionInUse {
    pub version: String,
    pub first_run_at: DateTime<Utc>,
    pub active_runs: i64,
    /// The version the config file defines now.
    pub current: bool,
}

/// Every stored version of each workflow that still has active runs, or is the
/// file's, newest first.
pub async fn versions_in_use(
    conn: &mut PgConnection,
    workflows: &Workflows,
) -> sqlx::Result<Vec<(String, VersionInUse)>> {
    let rows = sqlx::query!(
        r#"select v.workflow, v.id, v.created_at,
                  (select count(*) from workflow_runs r where r.version = v.id and r.state = 'active') as "active!"
           from workflow_versions v
           order by v.workflow, v.created_at desc"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let current = workflows
                .get(&row.workflow)
                .is_some_and(|w| w.version == row.id);
            let version = VersionInUse {
                version: row.id,
                first_run_at: row.created_at,
                active_runs: row.active,
                current,
            };
            (row.workflow, version)
        })
        .filter(|(_, v)| v.current || v.active_runs > 0)
        .collect())
}
