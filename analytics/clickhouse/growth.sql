-- Matches GET /api/v1/analytics/growth and /api/v1/analytics/churn: per bucket, the
-- users (and organizations) created and deleted, counted once per person by the first
-- such event, as Roster's clerk_event_firsts does; the running totals from every event
-- before; and churn, deletions over the users at the bucket's start (null with none).
-- Substitute {from_ms}, {to_ms} and {bucket} as in events_by_type.sql. Buckets without
-- any of these events are not listed (the API lists them, with the totals carried).
SELECT
    by_bucket_starts[i] AS start,
    by_bucket_signups[i] AS signups,
    by_bucket_deletions[i] AS deletions,
    by_bucket_signups[i] - by_bucket_deletions[i] AS net_growth,
    users_before + arrayCumSum(arrayMap((s, d) -> s - d, by_bucket_signups, by_bucket_deletions))[i] AS total_users,
    if(total_users - net_growth > 0, by_bucket_deletions[i] / (total_users - net_growth), NULL) AS churn_rate,
    by_bucket_orgs_created[i] AS organizations_created,
    by_bucket_orgs_deleted[i] AS organizations_deleted,
    orgs_before + arrayCumSum(arrayMap((c, d) -> c - d, by_bucket_orgs_created, by_bucket_orgs_deleted))[i] AS total_organizations
FROM (
    SELECT
        groupArray(start) AS by_bucket_starts,
        groupArray(created) AS by_bucket_signups,
        groupArray(deleted) AS by_bucket_deletions,
        groupArray(org_created) AS by_bucket_orgs_created,
        groupArray(org_deleted) AS by_bucket_orgs_deleted,
        any(users_before) AS users_before,
        any(orgs_before) AS orgs_before
    FROM (
        SELECT
            toDate({bucket}(toDateTime(intDiv(first_ms, 1000), 'UTC'))) AS start,
            toInt64(countIf(kind = 'user.created')) AS created,
            toInt64(countIf(kind = 'user.deleted')) AS deleted,
            toInt64(countIf(kind = 'organization.created')) AS org_created,
            toInt64(countIf(kind = 'organization.deleted')) AS org_deleted,
            any(before.users) AS users_before,
            any(before.orgs) AS orgs_before
        FROM (
            SELECT event_type AS kind, subject_id, min(occurred_at_ms) AS first_ms
            FROM clerk_events FINAL
            WHERE event_type IN ('user.created', 'user.deleted', 'organization.created', 'organization.deleted')
              AND subject_id != ''
            GROUP BY kind, subject_id
        )
        CROSS JOIN (
            SELECT
                toInt64(countIf(kind = 'user.created') - countIf(kind = 'user.deleted')) AS users,
                toInt64(countIf(kind = 'organization.created') - countIf(kind = 'organization.deleted')) AS orgs
            FROM (
                SELECT event_type AS kind, subject_id, min(occurred_at_ms) AS first_ms
                FROM clerk_events FINAL
                WHERE event_type IN ('user.created', 'user.deleted', 'organization.created', 'organization.deleted')
                  AND subject_id != ''
                GROUP BY kind, subject_id
            )
            WHERE first_ms < {from_ms}
        ) AS before
        WHERE first_ms >= {from_ms} AND first_ms < {to_ms}
        GROUP BY start
        ORDER BY start
    )
)
ARRAY JOIN arrayEnumerate(by_bucket_starts) AS i
ORDER BY start
