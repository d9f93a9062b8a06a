-- Matches GET /api/v1/analytics/waitlist, its per-bucket `joined`, `invited` and
-- `rejected`: the waitlist entries whose first waitlistEntry.created, or first update
-- to invited or to rejected, falls in the bucket (each entry counted once per step, as
-- Roster's clerk_event_firsts does). `graduated`, the conversion rate and the times to
-- graduate come from Roster's contacts (which entry became which user), not from the
-- event log, and are not computed here. Substitute {from_ms}, {to_ms} and {bucket} as
-- in events_by_type.sql. Buckets without any of these are not listed (the API lists
-- them with zeros).
SELECT
    toDate({bucket}(toDateTime(intDiv(first_ms, 1000), 'UTC'))) AS start,
    countIf(kind = 'waitlistEntry.created') AS joined,
    countIf(kind = 'waitlistEntry.invited') AS invited,
    countIf(kind = 'waitlistEntry.rejected') AS rejected
FROM (
    SELECT
        if(event_type = 'waitlistEntry.updated', concat('waitlistEntry.', status), event_type) AS kind,
        subject_id,
        min(occurred_at_ms) AS first_ms
    FROM clerk_events FINAL
    WHERE (event_type = 'waitlistEntry.created'
           OR (event_type = 'waitlistEntry.updated' AND status IN ('invited', 'rejected')))
      AND subject_id != ''
    GROUP BY kind, subject_id
)
WHERE first_ms >= {from_ms} AND first_ms < {to_ms}
GROUP BY start
ORDER BY start
