-- Matches GET /api/v1/analytics/waitlist, its buckets: `joined`, `invited` and
-- `rejected` are the waitlist entries whose first waitlistEntry.created, or first
-- update to invited or to rejected, falls in the bucket (each entry counted once per
-- step, as Roster's clerk_event_firsts does); `graduated` the addresses that
-- graduated in it (waitlist_graduations.sql, which this reads). The range's totals are
-- the sums; its conversion rate and times to graduate are waitlist_conversion.sql.
-- Substitute {from_ms}, {to_ms} and {bucket} as in events_by_type.sql. Buckets
-- without any of these are not listed (the API lists them with zeros).
SELECT
    toDate({bucket}(toDateTime(intDiv(first_ms, 1000), 'UTC'))) AS start,
    countIf(kind = 'waitlistEntry.created') AS joined,
    countIf(kind = 'waitlistEntry.invited') AS invited,
    countIf(kind = 'graduated') AS graduated,
    countIf(kind = 'waitlistEntry.rejected') AS rejected
FROM (
    SELECT
        if(event_type = 'waitlistEntry.updated', concat('waitlistEntry.', status), event_type) AS kind,
        min(occurred_at_ms) AS first_ms
    FROM clerk_events FINAL
    WHERE (event_type = 'waitlistEntry.created'
           OR (event_type = 'waitlistEntry.updated' AND status IN ('invited', 'rejected')))
      AND subject_id != ''
    GROUP BY kind, subject_id
    UNION ALL
    SELECT 'graduated' AS kind, graduated_ms AS first_ms
    FROM waitlist_graduations
    WHERE graduated_ms != 0
)
WHERE first_ms >= {from_ms} AND first_ms < {to_ms}
GROUP BY start
ORDER BY start
