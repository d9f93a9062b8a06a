//! The state lists in the code are the lists the tables' check constraints allow.

use roster::campaigns::CampaignStatus;
use roster::jobs::state::JobState;
use roster::workflows::state::{DeliveryState, RunState};
use sqlx::PgPool;

/// The quoted values of the check constraint on `table`'s state column.
async fn allowed_states(pool: &PgPool, table: &str) -> Vec<String> {
    let definition: String = sqlx::query_scalar(
        "select pg_get_constraintdef(c.oid) from pg_constraint c join pg_class t on t.oid = c.conrelid
         where t.relname = $1 and c.contype = 'c' and pg_get_constraintdef(c.oid) ~ '(state|status) '",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .unwrap();
    let mut states: Vec<String> = definition
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    states.sort();
    states
}

fn sorted(names: impl IntoIterator<Item = &'static str>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().map(str::to_owned).collect();
    names.sort();
    names
}

#[sqlx::test]
async fn each_state_list_is_its_tables_check_constraint(pool: PgPool) {
    assert_eq!(
        allowed_states(&pool, "jobs").await,
        sorted(JobState::ALL.map(JobState::as_str))
    );
    assert_eq!(
        allowed_states(&pool, "workflow_runs").await,
        sorted(RunState::ALL.map(RunState::as_str))
    );
    let mut campaigns: Vec<String> = CampaignStatus::ALL
        .iter()
        .map(|s| s.label().to_lowercase())
        .collect();
    campaigns.sort();
    assert_eq!(allowed_states(&pool, "campaigns").await, campaigns);
    assert_eq!(
        allowed_states(&pool, "email_deliveries").await,
        sorted(DeliveryState::ALL.map(DeliveryState::as_str))
    );
}
