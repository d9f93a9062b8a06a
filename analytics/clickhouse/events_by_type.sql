-- Matches GET /api/v1/analytics/events: the count of each Clerk event type per bucket.
-- Substitute {from_ms} and {to_ms}: the range in milliseconds since 1970, UTC, from
-- the start of the bucket holding `from` (as the API's `range.from`) to `to`
-- (exclusive); and {bucket}: toStartOfDay, toMonday or toStartOfMonth for an interval
-- of day, week or month. Buckets without events are not listed (the API lists them
-- with zeros).
SELECT
    toDate({bucket}(toDateTime(intDiv(occurred_at_ms, 1000), 'UTC'))) AS start,
    event_type,
    count() AS events
FROM clerk_events FINAL
WHERE occurred_at_ms >= {from_ms} AND occurred_at_ms < {to_ms}
GROUP BY start, event_type
ORDER BY start, event_type
