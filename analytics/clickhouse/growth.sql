-- Matches GET /api/v1/analytics/growth and /api/v1/analytics/churn: per bucket, the
-- users (and organizations) created and deleted, counted once per person by the first
-- such event, as Roster's clerk_event_firsts does; the running totals from every event
-- before; and churn, deletions over the users at the bucket's start (null with none).
-- Substitute {from_ms}, {to_ms} and {bucket} as in events_by_type.sql. Buckets without
-- any of these events are not listed (the API lists them, with the totals carried).
-- Everything before the range falls in one leading bucket (1970-01-01), which starts
-- the running totals and is not listed.
SELECT
    bucket_starts[i] AS start,
    bucket_signups[i] AS signups,
    bucket_deletions[i] AS deletions,
    signups - deletions AS net_growth,
    arrayCumSum(arrayMap((s, d) -> s - d, bucket_signups, bucket_deletions))[i] AS total_users,
    if(total_users - net_growth > 0, deletions / (total_users - net_growth), NULL) AS churn_rate,
    bucket_orgs_created[i] AS organizations_created,
    bucket_orgs_deleted[i] AS organizations_deleted,
    arrayCumSum(arrayMap((c, d) -> c - d, bucket_orgs_created, bucket_orgs_deleted))[i] AS total_organizations
FROM (
    SELECT
        groupArray(start) AS bucket_starts,
        groupArray(created) AS bucket_signups,
        groupArray(deleted) AS bucket_deletions,
        groupArray(org_created) AS bucket_orgs_created,
        groupArray(org_deleted) AS bucket_orgs_deleted
    FROM (
        SELECT
            if(first_ms < {from_ms}, toDate(0),
               toDate({bucket}(toDateTime(intDiv(first_ms, 1000), 'UTC')))) AS start,
            toInt64(countIf(kind = 'user.created')) AS created,
            toInt64(countIf(kind = 'user.deleted')) AS deleted,
            toInt64(countIf(kind = 'organization.created')) AS org_created,
            toInt64(countIf(kind = 'organization.deleted')) AS org_deleted
        FROM (
            SELECT event_type AS kind, subject_id, min(occurred_at_ms) AS first_ms
            FROM clerk_events FINAL
            WHERE event_type IN ('user.created', 'user.deleted', 'organization.created', 'organization.deleted')
              AND subject_id != ''
            GROUP BY kind, subject_id
        )
        WHERE first_ms < {to_ms}
        GROUP BY start
        ORDER BY start
    )
)
ARRAY JOIN arrayEnumerate(bucket_starts) AS i
WHERE start != toDate(0)
ORDER BY start
