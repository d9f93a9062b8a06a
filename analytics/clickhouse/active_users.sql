-- Matches GET /api/v1/analytics/active-users: per bucket, `activeUsers` (distinct users
-- with a session.created) and `sessions`. Substitute {from_ms}, {to_ms} and {bucket}
-- as in events_by_type.sql. Buckets without sessions are not listed (the API lists
-- them with zeros).
SELECT
    toDate({bucket}(toDateTime(intDiv(occurred_at_ms, 1000), 'UTC'))) AS start,
    uniqExact(subject_id) AS active_users,
    count() AS sessions
FROM clerk_events FINAL
WHERE event_type = 'session.created'
  AND occurred_at_ms >= {from_ms} AND occurred_at_ms < {to_ms}
GROUP BY start
ORDER BY start
